"""Archive fuzzing: whatever an archive holds, nothing lands outside
the target, and each refusal is one line within limits on bytes, entries and memory."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from modeldeploy.fetcher.archive import extract
from modeldeploy.fetcher.errors import FetchError
from modeldeploy.fetcher.limits import Limits

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).resolve().parents[2]


def tar(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes | None], name: str = "a.tar.gz") -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as out:
        for info, data in members:
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def entry(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def refused(archive: Path, target: Path, match: str, limits: Limits | None = None) -> None:
    with pytest.raises(FetchError, match=match) as excinfo:
        extract(archive, target, limits)
    assert "\n" not in str(excinfo.value)
    assert len(str(excinfo.value)) < 300
    outside = [
        p for p in target.parent.rglob("*") if target not in p.parents and p != target and p != archive
    ]
    assert not [p for p in outside if p.name in ("evil", "passwd")], "something landed outside the target"


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (entry("hard", kind=tarfile.LNKTYPE, link="saved_model.pb"), "is a link"),
        (entry("soft", kind=tarfile.SYMTYPE, link="/etc/passwd"), "is a link"),
        (entry("dev", kind=tarfile.CHRTYPE), "not a file or folder"),
        (entry("blk", kind=tarfile.BLKTYPE), "not a file or folder"),
        (entry("fifo", kind=tarfile.FIFOTYPE), "not a file or folder"),
        (entry("../evil"), "escapes the target"),
        (entry("/evil"), "absolute path"),
    ],
    ids=["hard link", "symlink", "char device", "block device", "fifo", "dot-dot", "absolute"],
)
def test_tar_members_that_are_not_plain_files_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], match: str
) -> None:
    refused(tar(tmp_path, entry("saved_model.pb"), member), tmp_path / "out", match)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    refused(
        tar(tmp_path, entry("saved_model.pb", b"1"), entry("./saved_model.pb", b"2")),
        tmp_path / "t",
        "appears twice",
    )
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("saved_model.pb", b"1")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("saved_model.pb", b"2")
    refused(path, tmp_path / "z", "appears twice")


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("saved_model.pb", b"1")
        link = zipfile.ZipInfo("variables")
        link.external_attr = 0o120777 << 16  # S_IFLNK
        zf.writestr(link, "/etc")
    refused(path, tmp_path / "z", "is a link")


def test_unicode_names_land_inside_the_target(tmp_path: Path) -> None:
    names = ["saved_model.pb", "variables/权重.data", "modèle/ünïcødé.bin", "emoji/🙂"]
    extract(tar(tmp_path, *(entry(n) for n in names)), tmp_path / "out")
    extracted = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()
    )
    assert extracted == sorted(names)


def test_a_sparse_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.tar"
    info = tarfile.TarInfo("big.sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as out:
        out.addfile(info)
    with pytest.raises(FetchError) as excinfo:
        extract(path, tmp_path / "t")
    assert "sparse" in str(excinfo.value) or "corrupt archive" in str(excinfo.value)


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path: Path) -> None:
    zeros = b"\0" * (64 << 20)  # zeros compress to almost nothing
    path = tar(tmp_path, entry("saved_model.pb"), entry("variables/zeros", zeros))
    assert path.stat().st_size < 1 << 20
    refused(path, tmp_path / "t", "larger than 8388608 bytes", Limits(max_bytes=8 << 20))
    refused(path, tmp_path / "r", "expands more than 200 times")  # default limits: the ratio
    zipped = tmp_path / "z.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", zeros)
    refused(zipped, tmp_path / "zz", "expands more than 200 times")


def test_the_size_limit_holds_for_plain_data_too(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB that does not compress
    refused(
        tar(tmp_path, entry("saved_model.pb"), entry("variables/data", blob)),
        tmp_path / "t",
        "larger than",
        Limits(max_bytes=1 << 20),
    )


def test_a_million_entries_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Written as a stream of a million empty files; the fetcher stops at its entry limit
    without holding the entries in memory (measured in a process of its own)."""
    path = tmp_path / "many.tar.gz"
    with gzip.open(path, "wb", compresslevel=1) as raw, tarfile.open(fileobj=raw, mode="w|") as out:
        info = tarfile.TarInfo("")
        for i in range(1_000_000):
            info.name = f"f/{i}"
            out.addfile(info)
    code = (
        "from pathlib import Path;"
        "from modeldeploy.fetcher.archive import extract; from modeldeploy.fetcher.errors import FetchError\n"
        "try:\n"
        f"    extract(Path({str(path)!r}), Path({str(tmp_path / 'out')!r}))\n"
        "except FetchError as exc:\n"
        "    print(exc)\n"
        # VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
        "status = Path('/proc/self/status').read_text().splitlines()\n"
        "print(next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')) // 1024)\n"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    message, peak_mib = printed.strip().splitlines()
    assert "more than 100000 entries" in message
    assert int(peak_mib) < 150, f"peak RSS {peak_mib} MiB"
    assert len(list((tmp_path / "out").rglob("*"))) <= 100_001


def zip_with_a_lying_end_record(path: Path, entries: int) -> Path:
    """A zip whose central directory holds ``entries`` entries and whose end record says it
    holds one: the count is two bytes anyone can write. Written as raw records, fast."""
    header = struct.Struct("<4s4B4HL2L5H2L")
    with open(path, "wb") as out:
        size = 0
        for i in range(entries):
            name = b"%x" % i
            out.write(
                header.pack(b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0)
            )
            out.write(name)
            size += header.size + len(name)
        out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, size, 0, 0))
    return path


def test_a_zip_end_record_that_lies_about_its_entries_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """A million entries, declared as one: ZipFile would read the whole directory and make an
    object per entry before the first could be refused (measured in a process of its own)."""
    path = zip_with_a_lying_end_record(tmp_path / "lying.zip", 1_000_000)
    code = (
        "from pathlib import Path;"
        "from modeldeploy.fetcher.archive import extract; from modeldeploy.fetcher.errors import FetchError\n"
        "try:\n"
        f"    extract(Path({str(path)!r}), Path({str(tmp_path / 'out')!r}))\n"
        "except FetchError as exc:\n"
        "    print(exc)\n"
        "status = Path('/proc/self/status').read_text().splitlines()\n"
        "print(next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    message, peak_mib = out.strip().splitlines()
    assert message == "refused: more than 100000 entries"
    assert int(peak_mib) < 100, f"peak RSS {peak_mib} MiB"


def test_a_zip_is_refused_by_its_counted_entries_and_its_directory_size(tmp_path: Path) -> None:
    path = zip_with_a_lying_end_record(tmp_path / "lying.zip", 11)
    refused(path, tmp_path / "t", r"^refused: more than 10 entries$", Limits(max_entries=10))
    extract_ok = zip_with_a_lying_end_record(tmp_path / "ten.zip", 10)
    refused(extract_ok, tmp_path / "s", "more than 9 entries", Limits(max_entries=9))
    directory_size = 10 * (46 + 1)
    refused(
        extract_ok,
        tmp_path / "c",
        rf"central directory is larger than {directory_size - 1} bytes",
        Limits(max_central_directory_bytes=directory_size - 1),
    )


def test_a_zip_within_its_limits_extracts(tmp_path: Path) -> None:
    path = tmp_path / "ok.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(10):
            zf.writestr(f"f{i}", b"x")
    directory = sum(46 + len(info.filename) for info in zipfile.ZipFile(path).infolist())
    extract(path, tmp_path / "out", Limits(max_entries=10, max_central_directory_bytes=directory))
    assert len(list((tmp_path / "out").iterdir())) == 10


def test_a_tar_cut_at_an_entry_boundary_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tar"
    with tarfile.open(whole, "w") as out:  # uncompressed: gzip would notice a cut by itself
        for info, data in (entry("saved_model.pb"), entry("variables/v", b"v" * 700)):
            out.addfile(info, io.BytesIO(data or b""))
    data = whole.read_bytes()
    kept = 512 + 512 + 512 + 1024  # two headers, one data block and the second's two
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:kept])
    refused(cut, tmp_path / "t", r"truncated \(no end-of-archive block\)")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(data[:kept] + b"not a tar header".ljust(512, b"!"))
    refused(garbage, tmp_path / "g", r"truncated \(no end-of-archive block\)")
    extract(whole, tmp_path / "ok")
