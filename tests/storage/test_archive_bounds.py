"""The archive guards at their edges: what each refusal quotes, a central directory cut
inside a header, a big entry that does not compress. Each kills a mutant the mutation run
(make mutation) found surviving the broader archive tests."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modeldeploy.fetcher.archive import extract
from modeldeploy.fetcher.errors import FetchError
from modeldeploy.fetcher.limits import RATIO_FLOOR_BYTES, Budget, Limits

pytestmark = pytest.mark.timeout(60)
LONG = "n" * 150  # a name longer than a refusal quotes


def tar_of(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> Path:
    info.size = len(data) if info.isfile() else 0
    with tarfile.open(path, "w") as out:
        out.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def zip_of(path: Path, info: zipfile.ZipInfo, data: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, data)
    return path


def twice(path: Path, name: str) -> Path:
    with tarfile.open(path, "w") as out:
        for _ in range(2):
            out.addfile(member(name), io.BytesIO(b""))
    return path


def zip_member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        (f"{LONG}/../x", lambda p, n: tar_of(p, member(n)), "escapes the target"),
        (f"/{LONG}", lambda p, n: tar_of(p, member(n)), "absolute path"),
        (f"{LONG}\x00", lambda p, n: tar_of(p, member(n)), "has a NUL"),
        (LONG, lambda p, n: tar_of(p, member(n, tarfile.SYMTYPE, "x")), "is a link"),
        (LONG, lambda p, n: tar_of(p, member(n, tarfile.FIFOTYPE)), "not a file or folder"),
        (LONG, lambda p, n: zip_of(p, zip_member(n, 0o120777)), "is a link"),
        (LONG, lambda p, n: zip_of(p, zip_member(n, 0o010644)), "not a file or folder"),
        (LONG, lambda p, n: zip_of(p, zip_member(n, 0o140644)), "not a file or folder"),  # a socket
        ("C:/" + LONG, lambda p, n: tar_of(p, member(n)), "absolute path"),
        (LONG, lambda p, n: twice(p, n), "appears twice"),
        (LONG, lambda p, n: tar_of(p, member(n, tarfile.GNUTYPE_SPARSE)), "is a sparse file"),
    ],
    ids=[
        "dot-dot",
        "absolute",
        "NUL",
        "tar link",
        "fifo",
        "zip link",
        "zip fifo",
        "zip socket",
        "drive letter",
        "duplicate",
        "sparse",
    ],
)
def test_a_refusal_quotes_the_first_hundred_characters_of_the_name(
    tmp_path: Path, name: str, make: Callable[[Path, str], Path], reason: str
) -> None:
    """Enough to find the entry, bounded so the line fits a status condition."""
    with pytest.raises(FetchError, match=reason) as excinfo:
        extract(make(tmp_path / "a.tar", name), tmp_path / "out")
    assert repr(name[:100]) in str(excinfo.value)


def test_the_entry_limit_quotes_the_first_hundred_characters_of_the_name() -> None:
    budget = Budget(Limits(max_entries=0))
    with pytest.raises(FetchError) as excinfo:
        budget.entry(LONG)
    assert repr(LONG[:100]) in str(excinfo.value)


def test_a_central_directory_cut_inside_a_header_is_a_corrupt_archive(tmp_path: Path) -> None:
    """The header's signature is there, the rest of it is not: a short read, refused as one."""
    partial = b"PK\x01\x02" + b"\0" * 10
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(partial), 64, 0)
    path = tmp_path / "cut.zip"
    path.write_bytes(b"\0" * 64 + partial + end)
    with pytest.raises(FetchError, match=r"corrupt archive cut.zip: bad central directory"):
        extract(path, tmp_path / "out")


def test_a_big_entry_that_does_not_compress_extracts(tmp_path: Path) -> None:
    """Past the ratio's floor, but at a ratio of one: a model's weights, not a bomb."""
    data = bytes(range(256)) * (2 * RATIO_FLOOR_BYTES // 256)
    path = tmp_path / "weights.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("variables/variables.data-00000-of-00001", data)
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "variables" / "variables.data-00000-of-00001").stat().st_size == len(data)


def test_the_default_ratio_is_two_hundred() -> None:
    """The ratio the docs promise: a 1 MiB archive may expand to 200 MiB, not a byte more."""
    budget = Budget(Limits(), compressed_bytes=RATIO_FLOOR_BYTES)
    budget.wrote(200 * RATIO_FLOOR_BYTES)
    with pytest.raises(FetchError, match="expands more than 200 times"):
        budget.wrote(1)


def test_the_archives_own_folder_entries_are_skipped_however_many(tmp_path: Path) -> None:
    """tar writes the archive's root as "." (twice, when archives are concatenated): skipped,
    not counted as a name that appears twice; the names around it are files."""
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as out:
        for name in (".", "+weights", ".", "-notes", "saved_model.pb"):
            info = member(name, tarfile.DIRTYPE if name == "." else tarfile.REGTYPE)
            info.size = 0
            out.addfile(info)
    extract(path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["+weights", "-notes", "saved_model.pb"]


def test_folders_and_the_files_after_them_are_extracted_from_either_format(tmp_path: Path) -> None:
    tar_path = tmp_path / "a.tar"
    with tarfile.open(tar_path, "w") as out:
        out.addfile(member("variables", tarfile.DIRTYPE))
        for name in ("variables/variables.index", "saved_model.pb"):
            out.addfile(member(name), io.BytesIO(b""))
    zip_path = tmp_path / "a.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("variables/"), b"")
        zf.writestr("variables/variables.index", b"i")
        zf.writestr("saved_model.pb", b"s")
    for archive in (tar_path, zip_path):
        out_dir = tmp_path / f"out-{archive.suffix}"
        extract(archive, out_dir)
        assert (out_dir / "variables").is_dir()
        assert (out_dir / "variables" / "variables.index").is_file()
        assert (out_dir / "saved_model.pb").is_file()


def test_the_central_directory_is_walked_over_names_extra_fields_and_comments(tmp_path: Path) -> None:
    """Each header is followed by its name, extra field and comment: a walk that skips the
    wrong lengths lands mid-record and calls the archive corrupt, or miscounts."""
    path = tmp_path / "annotated.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(5):
            info = zipfile.ZipInfo(f"f{i}")
            info.extra = b"\x99\x99\x04\x00" + b"%04d" % i  # a private extra-field block
            info.comment = b"comment %d" % i
            zf.writestr(info, b"x")
    extract(path, tmp_path / "out", Limits(max_entries=5))
    assert len(list((tmp_path / "out").iterdir())) == 5
    with pytest.raises(FetchError, match=r"^refused: more than 4 entries$"):  # the walk's own count
        extract(path, tmp_path / "four", Limits(max_entries=4))


def test_a_zip64_central_directory_is_found_as_zipfile_finds_it(tmp_path: Path) -> None:
    """More than 65535 entries: the end record moves to its zip64 form, with two more records
    between the directory and the end; the walk must start where ZipFile starts."""
    path = tmp_path / "zip64.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(0x10000):
            zf.writestr(zipfile.ZipInfo(f"{i:x}"), b"")
    assert b"PK\x06\x06" in path.read_bytes()[-200:]
    with pytest.raises(FetchError, match=r"^refused: more than 65535 entries$"):
        extract(path, tmp_path / "out", Limits(max_entries=0xFFFF))


def test_the_default_central_directory_bound_is_sixty_four_mebibytes(tmp_path: Path) -> None:
    """Declared, not written: a sparse file whose end record claims the directory's size."""
    for size, reason in (
        ((64 << 20) + 1, "central directory is larger than 67108864 bytes"),
        (64 << 20, "bad central directory"),  # within the bound: read, and found to be zeros
    ):
        path = tmp_path / f"{size}.zip"
        with open(path, "wb") as out:
            out.seek(size)
            out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, size, 0, 0))
        with pytest.raises(FetchError, match=reason):
            extract(path, tmp_path / "out")


def test_an_entry_at_exactly_the_ratio_extracts_and_past_it_is_refused_by_name(tmp_path: Path) -> None:
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("weights", bytes(range(256)) * (2 * RATIO_FLOOR_BYTES // 256))
    extract(stored, tmp_path / "out", Limits(max_ratio=1.0))  # stored: a ratio of exactly one
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(LONG, b"\0" * (2 * RATIO_FLOOR_BYTES))
    with pytest.raises(FetchError, match="expands more than 200 times") as excinfo:
        extract(bomb, tmp_path / "bomb")
    assert repr(LONG[:100]) in str(excinfo.value)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_extraction_makes_missing_folders_and_accepts_existing_ones(tmp_path: Path, kind: str) -> None:
    """A folder's entry may come after its files, or never; the target may already exist."""
    names = ["a/b/c/file", "a/b/", "deep/er/", "top"]
    path = tmp_path / f"a.{kind}"
    if kind == "tar":
        with tarfile.open(path, "w") as out:
            for name in names:
                info = member(name.rstrip("/"), tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE)
                out.addfile(info, io.BytesIO(b""))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            for name in names:
                zf.writestr(zipfile.ZipInfo(name), b"")
    for target in (tmp_path / "missing" / "parent", tmp_path / "existing"):
        if target.name == "existing":
            target.mkdir()
        extract(path, target)
        assert (target / "a" / "b" / "c" / "file").is_file()
        assert (target / "top").is_file()
        assert (target / "deep" / "er").is_dir()


def test_an_entry_of_exactly_the_floor_may_compress_any_amount(tmp_path: Path) -> None:
    path = tmp_path / "floor.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * RATIO_FLOOR_BYTES)
    extract(path, tmp_path / "out")
    assert (tmp_path / "out" / "zeros").stat().st_size == RATIO_FLOOR_BYTES


def test_a_central_directory_before_the_start_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "before.zip"
    path.write_bytes(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 1, 0, 0))  # one byte before 0
    with pytest.raises(FetchError, match="bad offset for the central directory"):
        extract(path, tmp_path / "out")


def test_a_central_directory_of_other_records_is_refused(tmp_path: Path) -> None:
    """Signatures both above and below the central header's are not it."""
    for fill in (b"\0", b"Z"):
        records = fill * 46
        path = tmp_path / "other.zip"
        path.write_bytes(records + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(records), 0, 0))
        with pytest.raises(FetchError, match="bad central directory"):
            extract(path, tmp_path / "out")
