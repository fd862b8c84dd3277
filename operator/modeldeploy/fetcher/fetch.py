"""Fetch ``<storageUri>/<version>/`` into ``<model dir>/<version>/``, verify it, report a digest.

A version's folder is found by its number, as TF Serving reads folders: ``3``, ``0003``
and ``00000003`` all hold version 3 (TF Serving's own test data pads to eight digits,
KServe's examples to four). Two folders with the same number are refused as ambiguous.

The version lands in a staging folder first and is renamed into place only
after it verified, so TF Serving never sees half a model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..api.fetch_protocol import FetchSuccess, success_message
from . import archive, savedmodel
from .errors import FetchError
from .limits import Budget, Limits

GCS_S3_ENDPOINT = "https://storage.googleapis.com"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
HTTP_TIMEOUT_SECONDS = 60


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
    if version < 1:
        raise FetchError(f"version must be 1 or more, got {version}")
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / str(version)
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".{version}.") as staging_name:
        staging = Path(staging_name)
        scheme = urlparse(uri).scheme
        folder = ""
        if scheme == "file":
            folder = _fetch_file(uri, version, staging, Budget(limits))
        elif scheme in ("s3", "gs"):
            folder = _fetch_s3(uri, version, staging, env, Budget(limits))
        elif scheme in ("http", "https"):
            _fetch_http(uri, version, staging, limits)
        elif scheme == "pvc":
            raise FetchError("pvc:// models are mounted into the serving container, not fetched")
        else:
            raise FetchError(f"unsupported storage scheme {scheme!r} in {uri}")
        version_dir = _version_root(staging)
        savedmodel.verify(version_dir, f"version {version}")
        digest, files, size = _digest(version_dir)
        if final.exists():
            shutil.rmtree(final)
        version_dir.rename(final)
    return FetchResult(final, digest, files, size, folder)


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


def _s3_client(uri: str, env: Mapping[str, str]) -> tuple[Any, str]:
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
        connect_timeout=10,
        read_timeout=60,
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
    client, endpoint = _s3_client(uri, env)
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
        for key in keys:
            relative = archive.safe_relative(key[len(prefix) :])
            dest = staging / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(dest))
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


# ----- http(s):// archives -----


def _archive_urls(uri: str, version: int) -> list[str]:
    if uri.endswith(ARCHIVE_SUFFIXES):
        return [uri]
    base = uri.rstrip("/")
    return [f"{base}/{version}.tar.gz", f"{base}/{version}.zip"]


def _fetch_http(uri: str, version: int, staging: Path, limits: Limits) -> None:
    tried = []
    for url in _archive_urls(uri, version):
        name = url.rsplit("/", 1)[-1]
        target = staging.parent / f"{staging.name}.download"
        try:
            target.unlink(missing_ok=True)
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
                archive.copy_limited(response, target, Budget(limits))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                tried.append(name)
                continue
            if exc.code in (401, 403):
                raise FetchError(f"access denied to {_redacted(url)} (HTTP {exc.code})") from None
            raise FetchError(f"{_redacted(url)} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"cannot reach {_redacted(url)}: {reason}") from None
        try:
            archive.extract(target, staging, limits)
        finally:
            target.unlink(missing_ok=True)
        return
    raise _not_found(uri, version, f"has no archive (tried {', '.join(tried)})")


def _redacted(url: str) -> str:
    """Credentials in a URL's user-info never reach a log or a termination message."""
    parsed = urlparse(url)
    if parsed.password or parsed.username:
        return parsed._replace(
            netloc=f"***@{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")
        ).geturl()
    return url
