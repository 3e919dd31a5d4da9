"""messages.frozen: deep-frozen JSON values that can cross actor boundaries."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from messages.frozen import FrozenDict, freeze, thaw

pytestmark = pytest.mark.timeout(30)

PAYLOAD = {"connectorId": 1, "meterValue": [{"timestamp": "t", "sampledValue": [{"value": "1", "unit": "Wh"}]}]}


def test_freeze_turns_objects_into_frozen_dicts_and_arrays_into_tuples_all_the_way_down():
    frozen = freeze(PAYLOAD)
    assert isinstance(frozen, FrozenDict)
    assert isinstance(frozen["meterValue"], tuple)
    assert isinstance(frozen["meterValue"][0], FrozenDict)
    assert isinstance(frozen["meterValue"][0]["sampledValue"][0], FrozenDict)


def test_a_frozen_dict_cannot_be_changed():
    frozen = freeze(PAYLOAD)
    with pytest.raises(TypeError):
        frozen["connectorId"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        frozen.pop("connectorId")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        frozen.foo = 1  # type: ignore[attr-defined]


def test_changing_the_original_after_freezing_does_not_change_the_frozen_copy():
    original = copy.deepcopy(PAYLOAD)
    frozen = freeze(original)
    original["meterValue"][0]["sampledValue"][0]["value"] = "999"
    original["connectorId"] = 7
    assert frozen["meterValue"][0]["sampledValue"][0]["value"] == "1"
    assert frozen["connectorId"] == 1


def test_the_constructor_freezes_nested_values_too():
    inner = [1, 2]
    frozen = FrozenDict({"a": inner, "b": {"c": [3]}})
    inner.append(3)
    assert frozen["a"] == (1, 2)
    assert isinstance(frozen["b"], FrozenDict)
    hash(frozen)  # no unhashable list inside


def test_thaw_gives_back_plain_json_equal_to_the_original():
    thawed = thaw(freeze(PAYLOAD))
    assert thawed == PAYLOAD
    assert type(thawed) is dict and type(thawed["meterValue"]) is list
    assert json.loads(json.dumps(thawed)) == PAYLOAD


def test_thawed_values_are_new_mutable_copies():
    frozen = freeze(PAYLOAD)
    thawed = thaw(frozen)
    thawed["meterValue"].append({})
    assert len(frozen["meterValue"]) == 1


def test_a_frozen_dict_equals_the_plain_dict_it_was_made_from_even_when_nested():
    assert freeze(PAYLOAD) == PAYLOAD
    assert PAYLOAD == freeze(PAYLOAD)
    assert freeze({"key": ["a", "b"]}) == {"key": ["a", "b"]}
    assert freeze({"key": ["a", "b"]}) != {"key": ["a", "c"]}


def test_equal_frozen_dicts_hash_equal_and_work_as_keys():
    a, b = freeze(PAYLOAD), freeze(copy.deepcopy(PAYLOAD))
    assert a == b and hash(a) == hash(b)
    assert {a: "x"}[b] == "x"
    assert len({a, b, freeze({"other": 1})}) == 2


def test_a_frozen_dict_behaves_as_a_read_only_mapping():
    frozen = freeze({"a": 1, "b": 2})
    assert len(frozen) == 2
    assert list(frozen) == ["a", "b"]
    assert frozen.get("c") is None and "a" in frozen
    assert dict(frozen.items()) == {"a": 1, "b": 2}
    assert repr(frozen) == "FrozenDict({'a': 1, 'b': 2})"


def test_freezing_twice_returns_the_same_object():
    frozen = freeze(PAYLOAD)
    assert freeze(frozen) is frozen


def test_scalars_pass_through_freeze_and_thaw():
    for value in ("x", 1, 1.5, True, None):
        assert freeze(value) == value and thaw(value) == value


def test_a_frozen_dict_compared_with_something_that_is_not_a_mapping_is_unequal():
    assert freeze({"a": 1}) != [("a", 1)]
    assert freeze({}) != None  # noqa: E711


def test_a_frozen_dict_can_be_pickled_and_copied():
    frozen = freeze(PAYLOAD)
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    assert copy.deepcopy(frozen) == frozen
