"""The fetcher against real servers: S3 (moto), HTTP archives, local files; every error case."""

from __future__ import annotations

import io
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from modeldeploy.fetcher import FetchError, fetch
from modeldeploy.fetcher.__main__ import main as fetch_main
from modeldeploy.fetcher.savedmodel import count_meta_graphs
from testbed.support.s3server import CREDENTIALS, s3_client, upload_dir

pytestmark = pytest.mark.timeout(120)


def s3_env(endpoint: str) -> dict[str, str]:
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1"}


@pytest.fixture
def bucket(s3_endpoint: str, saved_model: Path) -> str:
    """A fresh bucket holding the SavedModel as version 3 of models/mnist."""
    name = f"models-{uuid.uuid4().hex[:8]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    upload_dir(client, name, "mnist/3", saved_model)
    return name


def tar_gz(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def model_entries(saved_model: Path, prefix: str = "") -> dict[str, bytes]:
    return {
        f"{prefix}{p.relative_to(saved_model).as_posix()}": p.read_bytes()
        for p in sorted(saved_model.rglob("*"))
        if p.is_file()
    }


# ----- S3 -----


def test_s3_fetch_lays_out_the_version_for_tf_serving(
    s3_endpoint: str, bucket: str, tmp_path: Path, saved_model: Path
) -> None:
    result = fetch(f"s3://{bucket}/mnist", 3, tmp_path / "mnist", s3_env(s3_endpoint))
    assert result.version_dir == tmp_path / "mnist" / "3"
    assert (result.version_dir / "saved_model.pb").read_bytes() == (
        saved_model / "saved_model.pb"
    ).read_bytes()
    assert (result.version_dir / "variables").is_dir()
    assert result.digest.startswith("sha256:")
    assert len(result.digest) == 7 + 64
    assert result.files == sum(1 for p in saved_model.rglob("*") if p.is_file())
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == ["3"]  # no staging left behind


def test_digest_identifies_the_artifact(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    env = s3_env(s3_endpoint)
    first = fetch(f"s3://{bucket}/mnist", 3, tmp_path / "a", env).digest
    assert fetch(f"s3://{bucket}/mnist", 3, tmp_path / "b", env).digest == first
    s3_client(s3_endpoint).put_object(Bucket=bucket, Key="mnist/3/assets/vocab.txt", Body=b"changed")
    assert fetch(f"s3://{bucket}/mnist", 3, tmp_path / "c", env).digest != first


def test_s3_missing_version(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    expected = rf"version 4 not found: s3://{bucket}/mnist/4/ does not exist \(versions there: 3\)"
    with pytest.raises(FetchError, match=expected):
        fetch(f"s3://{bucket}/mnist", 4, tmp_path, s3_env(s3_endpoint))


def test_s3_missing_bucket(s3_endpoint: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="bucket 'no-such-bucket' does not exist"):
        fetch("s3://no-such-bucket/mnist", 1, tmp_path, s3_env(s3_endpoint))


def test_s3_wrong_endpoint(tmp_path: Path) -> None:
    from testbed.cluster.localcluster import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(FetchError, match=f"cannot reach the S3 endpoint {closed}"):
        fetch("s3://models/mnist", 1, tmp_path, s3_env(closed))


def test_s3_access_denied_names_the_secret_and_never_the_key(
    s3_endpoint_with_auth: str, tmp_path: Path
) -> None:
    with pytest.raises(FetchError) as excinfo:
        fetch("s3://models/mnist", 1, tmp_path, s3_env(s3_endpoint_with_auth))
    message = str(excinfo.value)
    assert "access denied to s3://models/mnist/1/ (InvalidAccessKeyId)" in message
    assert "storageSecretName" in message
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in message
    assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in message


def test_a_public_bucket_is_read_without_credentials(
    s3_endpoint: str, tmp_path: Path, saved_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_client(s3_endpoint)
    public = f"public-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=public, ACL="public-read")
    for key, data in model_entries(saved_model, "mnist/3/").items():
        client.put_object(Bucket=public, Key=key, Body=data, ACL="public-read")
    # Credentials anywhere boto3 might look must not be what makes this pass.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = fetch(f"s3://{public}/mnist", 3, tmp_path / "m", {"AWS_ENDPOINT_URL": s3_endpoint})
    assert (result.version_dir / "saved_model.pb").is_file()


def test_a_private_bucket_read_anonymously_says_so(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"access denied .* read anonymously \(no credentials given\)"):
        fetch(f"s3://{bucket}/mnist", 3, tmp_path / "m", {"AWS_ENDPOINT_URL": s3_endpoint})


@pytest.mark.parametrize("folder", ["00000008", "0008", "8"])
def test_a_version_folder_is_found_by_its_number(
    s3_endpoint: str, tmp_path: Path, saved_model: Path, folder: str
) -> None:
    client = s3_client(s3_endpoint)
    name = f"padded-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    for key, data in model_entries(saved_model, f"m/{folder}/").items():
        client.put_object(Bucket=name, Key=key, Body=data)
    client.put_object(Bucket=name, Key="m/00000018/saved_model.pb", Body=b"another version")
    result = fetch(f"s3://{name}/m", 8, tmp_path / "m", s3_env(s3_endpoint))
    assert result.version_dir == tmp_path / "m" / "8"  # TF Serving reads it as 8 either way
    assert result.folder == folder
    summary = result.summary(f"s3://{name}/m", 8)
    assert (f"from folder {folder}" in summary) == (folder != "8"), summary


def test_two_folders_of_one_version_are_ambiguous(s3_endpoint: str, tmp_path: Path) -> None:
    client = s3_client(s3_endpoint)
    name = f"twice-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    for folder in ("1", "0001"):
        client.put_object(Bucket=name, Key=f"m/{folder}/saved_model.pb", Body=b"x")
    with pytest.raises(FetchError, match=r"version 1 is ambiguous in s3://.*: folders 0001, 1 all hold it"):
        fetch(f"s3://{name}/m", 1, tmp_path / "m", s3_env(s3_endpoint))


def test_s3_folder_that_is_not_a_saved_model(s3_endpoint: str, tmp_path: Path) -> None:
    client = s3_client(s3_endpoint)
    name = f"junk-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="m/1/model.onnx", Body=b"onnx")
    with pytest.raises(
        FetchError, match=r"not a SavedModel: version 1 has no saved_model.pb \(found \['model.onnx'\]\)"
    ):
        fetch(f"s3://{name}/m", 1, tmp_path / "m", s3_env(s3_endpoint))
    assert not (tmp_path / "m" / "1").exists()  # nothing half-fetched is left for TF Serving


# ----- HTTP archives -----


def test_http_tar_gz_with_the_version_folder_inside(
    http_root: tuple[Path, str], saved_model: Path, tmp_path: Path
) -> None:
    root, base = http_root
    (root / "mnist").mkdir()
    (root / "mnist" / "3.tar.gz").write_bytes(tar_gz(model_entries(saved_model, prefix="3/")))
    result = fetch(f"{base}/mnist", 3, tmp_path / "mnist")
    assert (result.version_dir / "saved_model.pb").is_file()
    assert (result.version_dir / "variables").is_dir()


def test_http_zip_with_files_at_the_root(
    http_root: tuple[Path, str], saved_model: Path, tmp_path: Path
) -> None:
    root, base = http_root
    with zipfile.ZipFile(root / "model.zip", "w") as zf:
        for name, data in model_entries(saved_model).items():
            zf.writestr(name, data)
    result = fetch(f"{base}/model.zip", 5, tmp_path / "mnist")
    assert result.version_dir.name == "5"
    assert (result.version_dir / "saved_model.pb").is_file()


def test_http_missing_version(http_root: tuple[Path, str], tmp_path: Path) -> None:
    _, base = http_root
    with pytest.raises(
        FetchError, match=r"version 9 not found: .*/mnist/9/ has no archive \(tried 9.tar.gz, 9.zip\)"
    ):
        fetch(f"{base}/mnist", 9, tmp_path)


def test_http_corrupt_archive(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    (root / "1.tar.gz").write_bytes(b"\x1f\x8b this is not gzip at all")
    with pytest.raises(FetchError, match="corrupt archive"):
        fetch(base, 1, tmp_path)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../../etc/evil", "escapes the target"),
        ("/etc/evil", "absolute path"),
        ("ok/../../evil", "escapes the target"),
    ],
)
def test_zip_slip_is_refused(http_root: tuple[Path, str], tmp_path: Path, entry: str, reason: str) -> None:
    root, base = http_root
    (root / "1.tar.gz").write_bytes(tar_gz({"saved_model.pb": b"\x08\x01", entry: b"owned"}))
    with zipfile.ZipFile(root / "2.zip", "w") as zf:
        zf.writestr("saved_model.pb", b"\x08\x01")
        zf.writestr(entry, b"owned")
    with pytest.raises(FetchError, match=reason):
        fetch(base, 1, tmp_path / "t")
    with pytest.raises(FetchError, match=reason):
        fetch(base, 2, tmp_path / "z")
    assert not list(tmp_path.rglob("evil"))


def test_symlinks_in_archives_are_refused(http_root: tuple[Path, str], tmp_path: Path) -> None:
    root, base = http_root
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("variables")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        tar.addfile(link)
    (root / "1.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(FetchError, match="is a link"):
        fetch(base, 1, tmp_path)


def test_http_credentials_in_the_url_are_redacted(http_root: tuple[Path, str], tmp_path: Path) -> None:
    _, base = http_root
    with pytest.raises(FetchError) as excinfo:
        fetch(base.replace("http://", "http://user:hunter2@"), 1, tmp_path)
    assert "hunter2" not in str(excinfo.value)


def test_signed_query_strings_never_reach_the_termination_message(
    http_root: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, base = http_root
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MODELDEPLOY_TERMINATION_LOG", str(log))
    uri = f"{base}/missing.tar.gz?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA"
    assert fetch_main([uri, "1", str(tmp_path / "out")]) == 1
    line = log.read_text()
    assert "s3cr3t" not in line
    assert "AKIA" not in line
    assert "?<redacted>" in line


# ----- file:// and the command -----


def test_file_scheme(saved_model: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(saved_model, store / "7")
    assert (fetch(f"file://{store}", 7, tmp_path / "out").version_dir / "saved_model.pb").is_file()
    with pytest.raises(FetchError, match=rf"version 8 not found: file://{store}/8/ does not exist"):
        fetch(f"file://{store}", 8, tmp_path / "out")
    shutil.copytree(saved_model, store / "0009")
    assert fetch(f"file://{store}", 9, tmp_path / "out").folder == "0009"


def test_html_error_page_saved_as_the_model_is_not_a_saved_model(tmp_path: Path) -> None:
    store = tmp_path / "store" / "1"
    store.mkdir(parents=True)
    (store / "saved_model.pb").write_bytes(b"<html><body>403 Forbidden</body></html>")
    with pytest.raises(FetchError, match=r"saved_model\.pb is not a SavedModel protobuf"):
        fetch(f"file://{tmp_path / 'store'}", 1, tmp_path / "out")


def test_real_saved_model_has_a_meta_graph(saved_model: Path) -> None:
    assert count_meta_graphs((saved_model / "saved_model.pb").read_bytes()) >= 1


def test_command_writes_one_line_termination_messages(
    s3_endpoint: str,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MODELDEPLOY_TERMINATION_LOG", str(log))
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    assert fetch_main([f"s3://{bucket}/mnist", "3", str(tmp_path / "models")]) == 0
    assert log.read_text().startswith(f"fetched version 3 of s3://{bucket}/mnist: sha256:")
    assert fetch_main([f"s3://{bucket}/mnist", "4", str(tmp_path / "models")]) == 1
    lines = log.read_text().splitlines()
    assert lines == [
        f"fetch failed: version 4 not found: s3://{bucket}/mnist/4/ does not exist (versions there: 3)"
    ]
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in capsys.readouterr().err
    assert fetch_main(["s3://x/y", "three", str(tmp_path)]) == 1
