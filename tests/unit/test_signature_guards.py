"""The edges of the signature comparison and of reading TF Serving's metadata: each test
holds a guard that mutation testing (make mutation) found no test holding."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.spec import SignaturePolicy
from modeldeploy.rollout.signature import MetadataError, Signature, Tensor, differences, parse_metadata

pytestmark = pytest.mark.timeout(30)

COMPATIBLE, IDENTICAL = SignaturePolicy.COMPATIBLE, SignaturePolicy.IDENTICAL


def sig(inputs: dict[str, Tensor] | None = None, outputs: dict[str, Tensor] | None = None) -> Signature:
    return Signature(inputs or {}, outputs or {})


def floats(shape: tuple[int, ...] | None = (-1,)) -> Tensor:
    return Tensor("DT_FLOAT", shape)


def reply(signature_def: Any) -> dict[str, Any]:
    return {"metadata": {"signature_def": {"signature_def": signature_def}}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model_spec": {}}, "no metadata.signature_def.signature_def"),  # a KeyError
        ([1, 2], "no metadata.signature_def.signature_def"),  # a TypeError
        (reply([]), "signature_def is not an object"),
        (reply({"s": {"inputs": []}}), "signature 's': inputs is not an object"),
        (reply({"s": {"inputs": {"x": "DT_FLOAT"}}}), "s.inputs.x is not an object"),
        (reply({"s": {"inputs": {"x": {"tensor_shape": [1]}}}}), "s.inputs.x.tensor_shape is not an object"),
        (reply({"s": {"outputs": {"y": {"tensor_shape": {"dim": [{"size": "many"}]}}}}}), "not a number"),
        (reply({"s": {"outputs": {"y": {"tensor_shape": {"dim": [{"size": None}]}}}}}), "not a number"),
        (reply({"s": {"outputs": {"y": {"tensor_shape": {"dim": ["3"]}}}}}), "not a number"),
    ],
)
def test_metadata_that_is_not_tf_servings_is_refused_with_where(body: Any, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(body)


def test_metadata_reads_shapes_dtypes_and_skips_the_init_op() -> None:
    dims = {"dim": [{"size": "-1"}, {"name": "no size"}, {"size": "3"}]}
    body = reply(
        {
            "serving_default": {
                "inputs": {"x": {"dtype": "DT_INT64", "tensor_shape": dims}},
                "outputs": {"y": {"tensor_shape": {"unknown_rank": True}}},
            },
            "other": "not an object: no inputs or outputs",
            "__saved_model_init_op": {"inputs": {}, "outputs": {}},
        }
    )
    assert parse_metadata(body) == {
        "serving_default": sig({"x": Tensor("DT_INT64", (-1, -1, 3))}, {"y": Tensor("DT_INVALID", None)}),
        "other": sig(),
    }


def test_a_scalar_is_a_shape_of_rank_zero_not_unknown() -> None:
    body = reply({"serving_default": {"inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {}}}}})
    assert parse_metadata(body)["serving_default"].inputs["x"].shape == ()


def test_every_removed_input_and_output_is_listed() -> None:
    old = sig({"a": floats(), "b": floats()}, {"p": floats(), "q": floats()})
    assert differences({"serving_default": old}, {"serving_default": sig()}, COMPATIBLE) == [
        "input 'a' removed",
        "input 'b' removed",
        "output 'p' removed",
        "output 'q' removed",
    ]


@pytest.mark.parametrize(("was", "now"), [("DT_FLOAT", "DT_DOUBLE"), ("DT_DOUBLE", "DT_FLOAT")])
def test_a_dtype_change_is_found_whichever_way_it_sorts(was: str, now: str) -> None:
    old = {"serving_default": sig({"x": Tensor(was, (-1,))}, {"y": Tensor(was, (-1,))})}
    new = {"serving_default": sig({"x": Tensor(now, (-1,))}, {"y": Tensor(now, (-1,))})}
    assert differences(old, new, COMPATIBLE) == [f"input 'x': {was} -> {now}", f"output 'y': {was} -> {now}"]
    assert differences(old, old, COMPATIBLE) == []


def test_identical_finds_a_shape_change_that_compatible_allows() -> None:
    old = {"serving_default": sig({"x": floats((3,))})}
    new = {"serving_default": sig({"x": floats((-1,))})}
    assert differences(old, new, COMPATIBLE) == []
    assert differences(old, new, IDENTICAL) == ["input 'x': shape [3] -> [-1]"]
    assert differences(new, old, IDENTICAL) == ["input 'x': shape [-1] -> [3]"]


@pytest.mark.parametrize(
    ("was", "now", "compatible"),
    [
        ((2, 3), None, True),  # an unknown rank accepts every tensor
        (None, (2, 3), False),  # any rank went before; now only one does
        ((2, 3), (2, 3), True),
        ((2, 3), (-1, 3), True),
        ((2, 3), (2, -1), True),
        ((2, 3), (2, 4), False),
        ((2, 3), (1, 3), False),
        ((2, 1), (2, 3), False),  # a size of 1 is a size, not "any"
        ((2, 3), (2, 3, 1), False),
        ((2, 3), (2,), False),
    ],
)
def test_a_shape_is_compatible_when_it_accepts_every_tensor_the_old_one_did(
    was: tuple[int, ...] | None, now: tuple[int, ...] | None, compatible: bool
) -> None:
    old = {"serving_default": sig({"x": floats(was)})}
    new = {"serving_default": sig({"x": floats(now)})}
    assert (differences(old, new, COMPATIBLE) == []) is compatible


def test_an_unknown_rank_is_named_in_the_difference() -> None:
    old = {"serving_default": sig({"x": floats(None)})}
    new = {"serving_default": sig({"x": floats((-1, 2))})}
    assert differences(old, new, COMPATIBLE) == ["input 'x': shape unknown rank -> [-1,2]"]


def test_signatures_other_than_the_default_are_named_and_removed_or_added_ones_listed() -> None:
    old = {
        "serving_default": sig({"x": floats()}),
        "classify": sig({"x": floats()}),
        "gone": sig(),
        "tokenize": sig({"t": floats()}),  # sorts after serving_default
    }
    new = {"serving_default": sig(), "classify": sig({"z": floats()}), "extra": sig(), "tokenize": sig()}
    assert differences(old, new, COMPATIBLE) == [
        "signature 'classify': input 'x' removed",
        "signature 'classify': input 'z' added",
        "signature 'gone' removed",
        "input 'x' removed",  # the signatures after a removed one are compared too
        "signature 'tokenize': input 't' removed",
    ]
    assert differences(old, new, IDENTICAL)[-1] == "signature 'extra' added"
    assert "signature 'extra' added" not in differences(old, new, COMPATIBLE)
    assert differences(old, new, SignaturePolicy.IGNORE) == []
