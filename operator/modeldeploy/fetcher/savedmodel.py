"""Is this folder a SavedModel? Checked without TensorFlow, so the fetcher image stays small.

A SavedModel is ``saved_model.pb`` (a ``SavedModel`` protobuf: field 1
``saved_model_schema_version``, field 2 repeated ``MetaGraphDef``) and usually a
``variables/`` folder. The protobuf wire format is walked far enough to know the
file is one, and not, say, an HTML error page saved under that name.
"""

from __future__ import annotations

from pathlib import Path

from .errors import FetchError

_META_GRAPHS_FIELD = 2
_LENGTH_DELIMITED = 2


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def count_meta_graphs(data: bytes) -> int:
    """Top-level MetaGraphDef fields in a serialized SavedModel; ValueError if not protobuf."""
    pos, graphs = 0, 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(data, pos)
            pos += length
            graphs += field == _META_GRAPHS_FIELD
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
    return graphs


def verify(version_dir: Path, label: str) -> None:
    """Raise FetchError unless ``version_dir`` holds a SavedModel; ``label`` names it in messages."""
    pb = version_dir / "saved_model.pb"
    if not pb.is_file():
        present = sorted(p.name for p in version_dir.iterdir())[:5] if version_dir.is_dir() else []
        raise FetchError(f"not a SavedModel: {label} has no saved_model.pb (found {present})")
    try:
        graphs = count_meta_graphs(pb.read_bytes())
    except ValueError as exc:
        raise FetchError(f"not a SavedModel: saved_model.pb is not a SavedModel protobuf ({exc})") from None
    if graphs == 0:
        raise FetchError("not a SavedModel: saved_model.pb holds no MetaGraphDef")
    variables = version_dir / "variables"
    if variables.exists() and not variables.is_dir():
        raise FetchError("not a SavedModel: variables is not a folder")
