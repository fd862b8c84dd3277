"""TF Serving's error model: a canonical status code and a message, mapped to HTTP as
``tensorflow_serving/model_servers/http_server.cc`` (``ToHTTPStatusCode``) maps it."""

from __future__ import annotations

# Canonical codes (absl / TensorFlow / gRPC share them), by number.
CODE_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request or load that failed with a canonical code (its name, e.g. NOT_FOUND)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        assert code in HTTP_STATUS, code
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def number(self) -> int:
        """The code's number, as gRPC and TF Serving's status protos carry it."""
        return CODE_NAMES.index(self.code)


def from_tensorflow(exc: Exception) -> ServingError:
    """A TensorFlow exception as TF Serving reports it: its own code, else UNKNOWN."""
    code = getattr(exc, "error_code", None)
    message = getattr(exc, "message", None) or str(exc)
    name = CODE_NAMES[code] if isinstance(code, int) and 0 < code < len(CODE_NAMES) else "UNKNOWN"
    return ServingError(name, message)
