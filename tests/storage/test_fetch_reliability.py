"""The fetcher never accepts a broken model, never leaks credentials, never outlives its
deadline: each against a loopback server that misbehaves as real storage does."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from modeldeploy.fetcher import FetchError, fetch
from modeldeploy.fetcher.__main__ import main as fetch_main

from .conftest import Script, ScriptedServer

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[2]
# The smallest SavedModel the fetcher's check accepts: one empty MetaGraphDef (field 2).
SAVED_MODEL_PB = b"\x12\x00"
DEADLINE_ENV = "MODELDEPLOY_FETCH_DEADLINE_SECONDS"
DIGEST_ENV = "MODELDEPLOY_FETCH_EXPECTED_DIGEST"


def plain_tar(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def without_end_blocks(tar: bytes) -> bytes:
    """The tar as a download cut at an entry's boundary leaves it: every entry whole, no end."""
    return tar.rstrip(b"\0") + b"\0" * (-len(tar.rstrip(b"\0")) % 512)


MODEL_TAR = plain_tar({"saved_model.pb": SAVED_MODEL_PB, "variables/variables.index": b"i" * 600})


def termination_line(log: Path) -> str:
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MODELDEPLOY_TERMINATION_LOG", str(log))
    return log


# ----- a truncated download is never a model -----


def test_a_download_shorter_than_its_content_length_is_refused(
    scripted_http: ScriptedServer, tmp_path: Path
) -> None:
    """The connection closes early at an entry's boundary: what arrived is a tar whose entries
    are all whole, and only the announced length says that something is missing."""
    cut = without_end_blocks(MODEL_TAR)
    scripted_http.scripts["/m/1.tar.gz"] = Script(cut, declared_length=len(MODEL_TAR))
    with pytest.raises(
        FetchError, match=rf"truncated download of .*/m/1.tar.gz: {len(cut)} of {len(MODEL_TAR)}"
    ):
        fetch(f"{scripted_http.base}/m", 1, tmp_path / "m")
    assert os.listdir(tmp_path / "m") == []


def test_a_tar_without_its_end_block_is_refused(scripted_http: ScriptedServer, tmp_path: Path) -> None:
    """Compressed whole, so gzip finds nothing wrong: the tar inside just stops."""
    scripted_http.scripts["/m/1.tar.gz"] = Script(gzip.compress(without_end_blocks(MODEL_TAR)))
    with pytest.raises(FetchError, match=r"truncated \(no end-of-archive block\)"):
        fetch(f"{scripted_http.base}/m", 1, tmp_path / "m")
    scripted_http.scripts["/m/2.tar.gz"] = Script(gzip.compress(MODEL_TAR))
    assert (fetch(f"{scripted_http.base}/m", 2, tmp_path / "m").version_dir / "saved_model.pb").is_file()


# ----- credentials never reach a message -----


def test_credentials_in_a_url_without_a_port_never_reach_the_termination_message(
    tmp_path: Path, termination_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """urllib reads ``user:hunter2@host`` as a host and a port, and its error quotes the
    "port": the password, with no scheme before it for a URL redactor to recognise."""
    code = fetch_main(["http://user:hunter2@127.0.0.1/m/1.tar.gz", "1", str(tmp_path / "m")])
    assert code == 1
    line = termination_line(termination_log)
    assert line.startswith("fetch failed: ")
    assert "hunter2" not in line
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "uri",
    ["http://user:hunter2@[::1/m", "http://user:hunter2@host:99999/m", "s3://user:hunter2@b/m?sig=s3cr3t"],
    ids=["broken IPv6 host", "port out of range", "s3 with user-info"],
)
def test_an_unforeseen_error_is_one_line_without_secrets(
    uri: str,
    tmp_path: Path,
    termination_log: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv(DEADLINE_ENV, "20")
    assert fetch_main([uri, "1", str(tmp_path / "m")]) == 1
    line = termination_line(termination_log)
    assert line.startswith("fetch failed: ")
    assert "hunter2" not in line
    assert "s3cr3t" not in line
    assert "Traceback" not in capsys.readouterr().err


def test_user_info_is_sent_as_basic_authentication(scripted_http: ScriptedServer, tmp_path: Path) -> None:
    scripted_http.scripts["/m/1.tar.gz"] = Script(gzip.compress(MODEL_TAR))
    uri = scripted_http.base.replace("http://", "http://reader:p%40ss@") + "/m"
    assert fetch(uri, 1, tmp_path / "m").files == 2
    assert scripted_http.authorizations == ["Basic cmVhZGVyOnBAc3M="]  # reader:p@ss


# ----- the deadline bounds the whole fetch -----


def test_a_stalled_server_fails_the_fetch_at_its_deadline(
    scripted_http: ScriptedServer, tmp_path: Path
) -> None:
    """Headers and part of the body, then nothing: the socket's own timeout would wait a minute."""
    scripted_http.scripts["/m/1.tar.gz"] = Script(
        MODEL_TAR[:1024], declared_length=len(MODEL_TAR), then="stall"
    )
    started = time.monotonic()
    with pytest.raises(
        FetchError, match=r"longer than its deadline of 1 s \(MODELDEPLOY_FETCH_DEADLINE_SECONDS\)"
    ):
        fetch(f"{scripted_http.base}/m", 1, tmp_path / "m", {DEADLINE_ENV: "1"})
    assert time.monotonic() - started < 10
    assert os.listdir(tmp_path / "m") == []


def test_a_trickling_server_fails_the_command_at_its_deadline(
    scripted_http: ScriptedServer, tmp_path: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte every few hundredths of a second: no socket read ever times out, and no read
    returns before a whole chunk arrived; only a deadline over the whole fetch ends it."""
    scripted_http.scripts["/m/1.tar.gz"] = Script(b"", declared_length=10 << 20, then="trickle")
    monkeypatch.setenv(DEADLINE_ENV, "1.5")
    started = time.monotonic()
    assert fetch_main([f"{scripted_http.base}/m", "1", str(tmp_path / "m")]) == 1
    assert time.monotonic() - started < 10
    assert termination_line(termination_log) == (
        "fetch failed: refused: the fetch took longer than its deadline of 1.5 s "
        "(MODELDEPLOY_FETCH_DEADLINE_SECONDS)"
    )
    assert os.listdir(tmp_path / "m") == []


# ----- a killed fetch leaves nothing that counts -----


def test_what_a_killed_fetch_left_is_cleared_by_the_next(
    scripted_http: ScriptedServer, tmp_path: Path
) -> None:
    """The model volume outlives the init container: the kubelet restarts a killed fetcher in
    the same pod, and what the first one staged would count against the volume's size limit."""
    scripted_http.scripts["/m/1.tar.gz"] = Script(b"\0" * (2 << 20), declared_length=64 << 20, then="stall")
    models = tmp_path / "m"
    killed = subprocess.Popen(
        [sys.executable, "-m", "modeldeploy.fetcher", f"{scripted_http.base}/m", "1", str(models)],
        cwd=REPO,
        env={**os.environ, "MODELDEPLOY_TERMINATION_LOG": str(tmp_path / "killed-log")},
    )
    try:
        assert scripted_http.requested.wait(timeout=30)
    finally:
        killed.kill()
        killed.wait(timeout=30)
    assert os.listdir(models), "the killed fetch staged nothing: the test proves nothing"
    scripted_http.scripts["/m/1.tar.gz"] = Script(gzip.compress(MODEL_TAR))
    fetch(f"{scripted_http.base}/m", 1, models)
    assert os.listdir(models) == ["1"]


# ----- spec.model.digest -----


def test_the_expected_digest_admits_only_the_artifact_it_names(tmp_path: Path) -> None:
    store = tmp_path / "store" / "1"
    (store / "variables").mkdir(parents=True)
    (store / "saved_model.pb").write_bytes(SAVED_MODEL_PB)
    digest = fetch(f"file://{tmp_path / 'store'}", 1, tmp_path / "first").digest
    assert fetch(f"file://{tmp_path / 'store'}", 1, tmp_path / "same", {DIGEST_ENV: digest}).digest == digest
    (store / "variables" / "variables.index").write_bytes(b"replaced")
    other = "sha256:" + "0" * 64
    with pytest.raises(
        FetchError,
        match=rf"digest mismatch: version 1 fetched as sha256:[0-9a-f]{{64}}, "
        rf"spec.model.digest is {other}",
    ):
        fetch(f"file://{tmp_path / 'store'}", 1, tmp_path / "other", {DIGEST_ENV: other})
    with pytest.raises(FetchError, match="digest mismatch"):
        fetch(f"file://{tmp_path / 'store'}", 1, tmp_path / "changed", {DIGEST_ENV: digest})
    assert os.listdir(tmp_path / "changed") == []  # nothing for TF Serving to load
