"""Safe extraction of .tar.gz and .zip archives: nothing lands outside the target."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import FetchError


def _safe_member_path(name: str) -> PurePosixPath:
    """Refuse absolute paths and ``..``: the zip-slip family of attacks."""
    path = PurePosixPath(name.replace("\\", "/"))
    drive_letter = bool(path.parts) and path.parts[0].endswith(":")
    if path.is_absolute() or drive_letter:
        raise FetchError(f"archive refused: entry {name!r} has an absolute path")
    if ".." in path.parts:
        raise FetchError(f"archive refused: entry {name!r} escapes the target with '..'")
    return path


def safe_relative(name: str) -> PurePosixPath:
    """An object key or entry name as a relative path, refusing escapes."""
    return _safe_member_path(name)


def extract(archive: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        else:
            _extract_tar(archive, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, FetchError):
            raise
        raise FetchError(f"corrupt archive {archive.name}: {exc}") from None


def _extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _safe_member_path(member.name)
            if member.issym() or member.islnk():
                raise FetchError(f"archive refused: entry {member.name!r} is a link")
            if not (member.isfile() or member.isdir()):
                raise FetchError(f"archive refused: entry {member.name!r} is not a file or folder")
        for member in members:
            dest = target / _safe_member_path(member.name)
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise FetchError(f"corrupt archive {archive.name}: cannot read {member.name!r}")
            with source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out)


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_member_path(info.filename)
        bad = zf.testzip()
        if bad is not None:
            raise FetchError(f"corrupt archive {archive.name}: bad CRC for {bad!r}")
        for info in infos:
            dest = target / _safe_member_path(info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(dest, "wb") as out:
                shutil.copyfileobj(source, out)
