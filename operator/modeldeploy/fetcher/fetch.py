"""Fetch ``<storageUri>/<version>/`` into ``<model dir>/<version>/``, verify it, report a digest.

A version's folder is found by its number, as TF Serving reads folders: ``3``, ``0003``
and ``00000003`` all hold version 3 (TF Serving's own test data pads to eight digits,
KServe's examples to four). Two folders with the same number are refused as ambiguous.

The version lands in a staging folder first and is renamed into place only
after it verified (and matched ``spec.model.digest`` when one is given), so TF Serving never
sees half a model. The staging folder has one fixed name, cleared at start: what a fetcher
killed mid-way left in the model volume never counts against its size limit.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..api.fetch_protocol import EXPECTED_DIGEST_ENV, FetchSuccess, success_message
from ..api.redaction import redact
from . import archive, savedmodel
from .errors import FetchError
from .limits import Budget, Deadline, Limits

GCS_S3_ENDPOINT = "https://storage.googleapis.com"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
HTTP_TIMEOUT_SECONDS = 60
# In the model folder, beside the versions: TF Serving skips names that are not numbers.
STAGING_DIR = ".modeldeploy-staging"


@dataclass(frozen=True)
class FetchResult:
    version_dir: Path
    digest: str
    files: int
    size: int
    folder: str = ""  # the storage folder the version came from (http archives have none)

    def summary(self, uri: str, version: int) -> str:
        """The success line of the termination message."""
        return success_message(FetchSuccess(uri, version, self.digest, self.files, self.size, self.folder))


def fetch(uri: str, version: int, model_dir: Path, env: Mapping[str, str] | None = None) -> FetchResult:
    env = os.environ if env is None else env
    limits = Limits.from_env(env)
    deadline = Deadline(limits.deadline_seconds)
    if version < 1:
        raise FetchError(f"version must be 1 or more, got {version}")
    model_dir.mkdir(parents=True, exist_ok=True)
    work = model_dir / STAGING_DIR
    shutil.rmtree(work, ignore_errors=True)  # a killed fetch's leftovers
    staging = work / "model"
    staging.mkdir(parents=True)
    try:
        folder = _fetch_into(uri, version, staging, env, Budget(limits, deadline=deadline))
        version_dir = _version_root(staging)
        savedmodel.verify(version_dir, f"version {version}")
        digest, files, size = _digest(version_dir)
        _check_expected_digest(env, digest, version)
        deadline.check()  # a fetch that ended late is not put in place
        final = model_dir / str(version)
        if final.exists():
            shutil.rmtree(final)
        version_dir.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return FetchResult(final, digest, files, size, folder)


def _fetch_into(uri: str, version: int, staging: Path, env: Mapping[str, str], budget: Budget) -> str:
    """Copy the version into ``staging``; the storage folder it came from ("" for archives)."""
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return _fetch_file(uri, version, staging, budget)
    if scheme in ("s3", "gs"):
        return _fetch_s3(uri, version, staging, env, budget)
    if scheme in ("http", "https"):
        _fetch_http(uri, version, staging, budget)
        return ""
    if scheme == "pvc":
        raise FetchError("pvc:// models are mounted into the serving container, not fetched")
    raise FetchError(f"unsupported storage scheme {scheme!r} in {redact(uri)}")


def _check_expected_digest(env: Mapping[str, str], digest: str, version: int) -> None:
    """spec.model.digest, when given, must be what was fetched: else the storage holds another
    artifact than the one the resource names (overwritten, or tampered with)."""
    expected = env.get(EXPECTED_DIGEST_ENV, "").strip()
    if expected and expected != digest:
        raise FetchError(
            f"digest mismatch: version {version} fetched as {digest}, spec.model.digest is {expected}"
        )


def _version_root(staging: Path) -> Path:
    """The folder holding saved_model.pb: the staging folder or its single subfolder."""
    if (staging / "saved_model.pb").exists():
        return staging
    entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "saved_model.pb").exists():
        return entries[0]
    return staging


def _digest(root: Path) -> tuple[str, int, int]:
    """sha256 over (path, content hash) of every file: changes when any byte or name does."""
    outer = hashlib.sha256()
    files, size = 0, 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        inner = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{path.relative_to(root).as_posix()}\0{inner.hexdigest()}\n".encode())
        files += 1
        size += path.stat().st_size
    return f"sha256:{outer.hexdigest()}", files, size


def _not_found(uri: str, version: int, detail: str) -> FetchError:
    return FetchError(f"version {version} not found: {uri.rstrip('/')}/{version}/ {detail}")


def version_folder(names: list[str], version: int, uri: str) -> str:
    """The one folder among ``names`` that TF Serving would read as ``version``."""
    matching = sorted(n for n in names if n.isdigit() and int(n) == version)
    if len(matching) > 1:
        raise FetchError(
            f"version {version} is ambiguous in {uri}: folders {', '.join(matching)} all hold it"
        )
    if not matching:
        versions = sorted((n for n in names if n.isdigit()), key=int)[:10]
        found = f"versions there: {', '.join(versions)}" if versions else "no version folders there"
        raise _not_found(uri, version, f"does not exist ({found})")
    return matching[0]


# ----- file:// -----


def _fetch_file(uri: str, version: int, staging: Path, budget: Budget) -> str:
    base = Path(urlparse(uri).path)
    names = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    folder = version_folder(names, version, uri)
    source = base / folder
    try:
        for path in sorted(source.rglob("*")):
            budget.entry(str(path.relative_to(source)))
            dest = staging / path.relative_to(source)
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise FetchError(f"refused: {path.relative_to(source)} is not a plain file or folder")
            if path.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as handle:
                archive.copy_limited(handle, dest, budget)
    except PermissionError as exc:
        raise FetchError(f"access denied reading {source}: {exc.strerror}") from None
    return folder


# ----- s3:// and gs:// (GCS through its S3-compatible XML API and HMAC keys) -----


def _s3_client(uri: str, env: Mapping[str, str], deadline: Deadline | None) -> tuple[Any, str]:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    scheme = urlparse(uri).scheme
    endpoint = (
        env.get("AWS_ENDPOINT_URL") or env.get("S3_ENDPOINT") or (GCS_S3_ENDPOINT if scheme == "gs" else "")
    )
    anonymous = not anonymous_read_refused(env)
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=deadline.timeout(10) if deadline else 10,
        read_timeout=deadline.timeout(60) if deadline else 60,
        s3={"addressing_style": "path" if endpoint else "auto"},
        # No credentials given: a public bucket is read with unsigned requests, and boto3 never
        # goes looking for credentials elsewhere (an instance metadata endpoint, say).
        signature_version=UNSIGNED if anonymous else None,
    )
    client = session.client("s3", endpoint_url=endpoint or None, config=config)
    return client, endpoint or "the default AWS endpoint"


def anonymous_read_refused(env: Mapping[str, str]) -> bool:
    """Whether credentials were given: keys (from storageSecretName) or a web identity
    (IRSA's injected token). Without either, S3 and GCS are read anonymously."""
    return bool(env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_WEB_IDENTITY_TOKEN_FILE"))


def _fetch_s3(uri: str, version: int, staging: Path, env: Mapping[str, str], budget: Budget) -> str:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    parsed = urlparse(uri)
    bucket, base = parsed.netloc, parsed.path.strip("/")
    parent = f"{base}/" if base else ""
    prefix = f"{parent}{version}/"
    client, endpoint = _s3_client(uri, env, budget.deadline)
    try:
        folders = [
            entry["Prefix"][len(parent) :].rstrip("/")
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=parent, Delimiter="/"
            )
            for entry in page.get("CommonPrefixes", [])
        ]
        folder = version_folder(folders, version, uri)
        prefix = f"{parent}{folder}/"
        keys = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    budget.entry(obj["Key"])  # before a byte is downloaded
                    budget.wrote(int(obj.get("Size", 0)))
                    keys.append(obj["Key"])
        if not keys:
            raise _not_found(uri, version, "holds no objects")
        _download_objects(client, bucket, [(key, key[len(prefix) :]) for key in keys], staging, budget)
        return folder
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in ("NoSuchBucket",):
            raise FetchError(f"bucket {bucket!r} does not exist at {endpoint}") from None
        if code in (
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403",
            "AllAccessDisabled",
        ):
            advice = (
                "check the credentials in spec.model.storageSecretName"
                if anonymous_read_refused(env)
                else "read anonymously (no credentials given): the bucket is not public; put "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in spec.model.storageSecretName"
            )
            raise FetchError(
                f"access denied to {parsed.scheme}://{bucket}/{prefix} ({code}): {advice}"
            ) from None
        raise FetchError(f"{parsed.scheme}://{bucket}/{prefix}: {code}") from None
    except NoCredentialsError:
        raise FetchError(
            "no credentials: put AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in spec.model.storageSecretName"
        ) from None
    except EndpointConnectionError:
        raise FetchError(f"cannot reach the S3 endpoint {endpoint}: check AWS_ENDPOINT_URL") from None
    except BotoCoreError as exc:
        raise FetchError(f"S3 error at {endpoint}: {type(exc).__name__}") from None


def _download_objects(
    client: Any, bucket: str, keys: list[tuple[str, str]], staging: Path, listed: Budget
) -> None:
    """Each (key, relative name) into ``staging``, one stream at a time in this thread (a
    deadline's signal reaches it), counting the bytes that arrive, not the sizes listed."""
    budget = Budget(listed.limits, deadline=listed.deadline)
    for key, relative in keys:
        dest = staging / archive.safe_relative(relative)
        dest.parent.mkdir(parents=True, exist_ok=True)
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with body:
            archive.copy_limited(body, dest, budget)


# ----- http(s):// archives -----


def _archive_urls(uri: str, version: int) -> list[str]:
    if uri.endswith(ARCHIVE_SUFFIXES):
        return [uri]
    base = uri.rstrip("/")
    return [f"{base}/{version}.tar.gz", f"{base}/{version}.zip"]


def _fetch_http(uri: str, version: int, staging: Path, budget: Budget) -> None:
    tried = []
    target = staging.parent / "download"
    for url in _archive_urls(uri, version):
        target.unlink(missing_ok=True)
        if not _download(url, target, budget):
            tried.append(url.rsplit("/", 1)[-1].split("?", 1)[0])
            continue
        try:
            archive.extract(target, staging, budget.limits, budget.deadline)
        finally:
            target.unlink(missing_ok=True)
        return
    raise _not_found(redact(uri), version, f"has no archive (tried {', '.join(tried)})")


def _request(url: str) -> urllib.request.Request:
    """The request for ``url``, its user-info sent as basic authentication: urllib would take
    ``user:pw@host`` for a host and a port, and quote the password in its error."""
    parsed = urlparse(url)
    if "@" not in parsed.netloc:
        return urllib.request.Request(url)
    userinfo, _, host = parsed.netloc.rpartition("@")
    token = base64.b64encode(unquote(userinfo).encode()).decode()
    return urllib.request.Request(
        parsed._replace(netloc=host).geturl(), headers={"Authorization": f"Basic {token}"}
    )


def _download(url: str, target: Path, budget: Budget) -> bool:
    """``url`` into ``target``, whole: False if the server has no such file."""
    timeout = budget.deadline.timeout(HTTP_TIMEOUT_SECONDS) if budget.deadline else HTTP_TIMEOUT_SECONDS
    download = Budget(budget.limits, deadline=budget.deadline)
    try:
        with urllib.request.urlopen(_request(url), timeout=timeout) as response:
            archive.copy_limited(response, target, download)
            declared = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        if exc.code in (401, 403):
            raise FetchError(f"access denied to {_redacted(url)} (HTTP {exc.code})") from None
        raise FetchError(f"{_redacted(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        if budget.deadline:
            budget.deadline.check()  # a wait cut short by the deadline says so
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot reach {_redacted(url)}: {reason}") from None
    if declared is not None and declared.isdigit() and int(declared) != download.bytes:
        # urllib returns what arrived when a connection closes early, without an error.
        raise FetchError(
            f"truncated download of {_redacted(url)}: {download.bytes} of {declared} bytes arrived"
        )
    return True


def _redacted(url: str) -> str:
    """Credentials in a URL's user-info or query never reach a log or a termination message."""
    return redact(url)
