"""Safe extraction of .tar.gz and .zip archives: nothing lands outside the target, and
nothing beyond the fetch's limits on bytes, entries and compression ratio.

Entries stream one at a time (tarfile's member list is dropped as it goes), so a million
entries cost no more memory than one. Links, devices, fifos, sparse files and duplicate
names are refused with one line.
"""

from __future__ import annotations

import stat
import struct
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import FetchError
from .limits import Budget, Limits

CHUNK = 1 << 20


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


def extract(archive: Path, target: Path, limits: Limits | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    budget = Budget(limits or Limits(), compressed_bytes=archive.stat().st_size)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, budget)
        else:
            _extract_tar(archive, target, budget)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, UnicodeError) as exc:
        if isinstance(exc, FetchError):
            raise
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


def _extract_tar(archive: Path, target: Path, budget: Budget) -> None:
    names = _Names()
    with tarfile.open(archive, "r:*") as tar:
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


def _zip_entry_count(archive: Path) -> int:
    """Entries the end-of-central-directory record declares, read before ``ZipFile`` loads
    every entry into memory (zip64 archives declare 0xFFFF here and are counted as more)."""
    with open(archive, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - (1 << 16) - 22))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        raise FetchError(f"corrupt archive {archive.name}: no end of central directory")
    (entries,) = struct.unpack("<H", tail[at + 10 : at + 12])
    return 1 << 32 if entries == 0xFFFF else int(entries)


def _extract_zip(archive: Path, target: Path, budget: Budget) -> None:
    if _zip_entry_count(archive) > budget.limits.max_entries:
        raise FetchError(f"refused: more than {budget.limits.max_entries} entries")
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
            if ratio > budget.limits.max_ratio and info.file_size > 1 << 20:
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
