"""Safe extraction of .tar.gz and .zip archives: nothing lands outside the target, and
nothing beyond the fetch's limits on bytes, entries and compression ratio.

Entries stream one at a time (tarfile's member list is dropped as it goes), so a million
entries cost no more memory than one. Links, devices, fifos, sparse files and duplicate
names are refused with one line. A tar without its end-of-archive block, or a zip whose central
directory is larger or holds more entries than the limits, is refused before anything is trusted.
"""

from __future__ import annotations

import stat
import struct
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import FetchError
from .limits import RATIO_FLOOR_BYTES, Budget, Deadline, Limits

CHUNK = 1 << 20
_CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # zipfile's structCentralDir
_CENTRAL_SIGNATURE = b"PK\x01\x02"
# zipfile's own end-record reader and constants (private, untyped): the central directory is
# located exactly as ZipFile will locate it, so what is counted is what it would load.
_ZIPFILE_INTERNALS: Any = zipfile


def _safe_member_path(name: str) -> PurePosixPath:
    """Refuse absolute paths and ``..``: the zip-slip family of attacks."""
    if "\x00" in name:
        raise FetchError(f"archive refused: entry {name[:100]!r} has a NUL in its name")
    path = PurePosixPath(name.replace("\\", "/"))
    drive_letter = bool(path.parts) and path.parts[0].endswith(":")
    if path.is_absolute() or drive_letter:
        raise FetchError(f"archive refused: entry {name[:100]!r} has an absolute path")
    if ".." in path.parts:
        raise FetchError(f"archive refused: entry {name[:100]!r} escapes the target with '..'")
    return path


def safe_relative(name: str) -> PurePosixPath:
    """An object key or entry name as a relative path, refusing escapes."""
    return _safe_member_path(name)


def copy_limited(source: IO[bytes], dest: Path, budget: Budget) -> None:
    """Copy a stream to a new file, counting every byte against the budget."""
    with open(dest, "xb") as out:
        while chunk := source.read(CHUNK):
            budget.wrote(len(chunk))
            out.write(chunk)


def extract(
    archive: Path, target: Path, limits: Limits | None = None, deadline: Deadline | None = None
) -> None:
    target.mkdir(parents=True, exist_ok=True)
    budget = Budget(limits or Limits(), compressed_bytes=archive.stat().st_size, deadline=deadline)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, budget)
        else:
            _extract_tar(archive, target, budget)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, UnicodeError) as exc:
        raise FetchError(f"corrupt archive {archive.name}: {str(exc)[:200]}") from None


class _Names:
    """Entry names seen, to refuse duplicates (a second entry silently replacing the first)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()  # strings: far smaller than a path object per entry

    def add(self, raw: str, path: PurePosixPath) -> None:
        key = path.as_posix()
        if key in self.seen:
            raise FetchError(f"archive refused: entry {raw[:100]!r} appears twice")
        self.seen.add(key)


class _EndMarkedTarInfo(tarfile.TarInfo):
    """Notes on its TarFile when the end-of-archive block (all zeros) was read: tarfile ends
    the same way, silently, when the data just stops at an entry's boundary (a truncated
    download) or a header is garbage, and only this block tells a whole archive apart."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _EndMarkedTarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            tarfile_.end_marker_read = True  # type: ignore[attr-defined]
            raise


def _extract_tar(archive: Path, target: Path, budget: Budget) -> None:
    names = _Names()
    with tarfile.open(archive, "r:*", tarinfo=_EndMarkedTarInfo) as tar:
        while (member := tar.next()) is not None:
            tar.members = []  # type: ignore[attr-defined]  # tarfile keeps every member read: drop them
            budget.entry(member.name)
            path = _safe_member_path(member.name)
            if member.issym() or member.islnk():
                raise FetchError(f"archive refused: entry {member.name[:100]!r} is a link")
            if member.issparse():
                raise FetchError(f"archive refused: entry {member.name[:100]!r} is a sparse file")
            if not (member.isfile() or member.isdir()):
                raise FetchError(f"archive refused: entry {member.name[:100]!r} is not a file or folder")
            if path == PurePosixPath("."):
                continue
            names.add(member.name, path)
            dest = target / path
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                raise FetchError(f"corrupt archive {archive.name}: cannot read {member.name[:100]!r}")
            with source:
                copy_limited(source, dest, budget)
        if not getattr(tar, "end_marker_read", False):
            raise FetchError(f"corrupt archive {archive.name}: truncated (no end-of-archive block)")


def _central_directory(handle: IO[bytes], archive: Path) -> tuple[int, int]:
    """Where the central directory starts and its size, found as ``ZipFile`` finds them (its
    own reading of the end record, zip64 included), so the walk below covers what it loads."""
    end_record = _ZIPFILE_INTERNALS._EndRecData(handle)
    if not end_record:
        raise FetchError(f"corrupt archive {archive.name}: no end of central directory")
    size = int(end_record[_ZIPFILE_INTERNALS._ECD_SIZE])
    start = int(end_record[_ZIPFILE_INTERNALS._ECD_LOCATION]) - size
    if end_record[_ZIPFILE_INTERNALS._ECD_SIGNATURE] == _ZIPFILE_INTERNALS.stringEndArchive64:
        start -= _ZIPFILE_INTERNALS.sizeEndCentDir64 + _ZIPFILE_INTERNALS.sizeEndCentDir64Locator
    if start < 0:
        raise FetchError(f"corrupt archive {archive.name}: bad offset for the central directory")
    return start, size


def _check_central_directory(archive: Path, limits: Limits) -> None:
    """Count the entries of the central directory one header at a time, before ``ZipFile``
    reads it whole and makes an object per entry: the count the end record declares is not
    trusted (a few bytes a forger sets), and the directory's size is bounded first."""
    with open(archive, "rb") as handle:
        start, size = _central_directory(handle, archive)
        if size > limits.max_central_directory_bytes:
            limit = limits.max_central_directory_bytes
            raise FetchError(f"refused: the zip's central directory is larger than {limit} bytes")
        handle.seek(start)
        walked, entries = 0, 0
        while walked < size:
            header = handle.read(_CENTRAL_HEADER.size)
            if len(header) != _CENTRAL_HEADER.size or header[:4] != _CENTRAL_SIGNATURE:
                raise FetchError(f"corrupt archive {archive.name}: bad central directory")
            fields = _CENTRAL_HEADER.unpack(header)
            variable = fields[12] + fields[13] + fields[14]  # name, extra field and comment lengths
            handle.seek(variable, 1)
            walked += _CENTRAL_HEADER.size + variable
            entries += 1
            if entries > limits.max_entries:
                raise FetchError(f"refused: more than {limits.max_entries} entries")


def _extract_zip(archive: Path, target: Path, budget: Budget) -> None:
    _check_central_directory(archive, budget.limits)
    names = _Names()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            budget.entry(info.filename)
            path = _safe_member_path(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (a plain file)
            if kind == stat.S_IFLNK:
                raise FetchError(f"archive refused: entry {info.filename[:100]!r} is a link")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise FetchError(f"archive refused: entry {info.filename[:100]!r} is not a file or folder")
            ratio = info.file_size / info.compress_size if info.compress_size else 0.0
            if ratio > budget.limits.max_ratio and info.file_size > RATIO_FLOOR_BYTES:
                raise FetchError(
                    f"refused: entry {info.filename[:100]!r} expands more than "
                    f"{budget.limits.max_ratio:g} times (an archive bomb?)"
                )
            names.add(info.filename, path)
        budget.entries = 0  # counted again below, entry by entry
        for info in infos:
            budget.entry(info.filename)
            dest = target / _safe_member_path(info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source:  # zipfile checks each entry's CRC as it reads
                copy_limited(source, dest, budget)
