"""The model fetcher: the init container that puts one model version where TF Serving reads it.

``modeldeploy-fetch <storageUri> <version> <model dir>`` copies
``<storageUri>/<version>/`` to ``<model dir>/<version>/``, checks that it is a
SavedModel, and writes a one-line result to the termination message: the
artifact's digest on success, the reason on failure. Imports only ``api``'s
standard-library modules: its image carries neither kopf nor pydantic.
"""

from .errors import FetchError
from .fetch import FetchResult, fetch

__all__ = ["FetchError", "FetchResult", "fetch"]
