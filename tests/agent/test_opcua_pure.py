"""OPC UA without a server: namespace lookup and joining a reject total with its code."""

from __future__ import annotations

import pytest

from edge_agent.mapping import RawReading
from edge_agent.sources.opcua.assemble import Assembler
from edge_agent.sources.opcua.models import OpcuaBinding
from edge_agent.sources.opcua.namespace import NamespaceError, resolve_namespace

ARRAY = ["http://opcfoundation.org/UA/", "urn:host-a:vendor", "urn:press-7.plant.local:plc"]


@pytest.mark.parametrize(
    ("given", "index"),
    [
        ({"namespace_uri": "urn:host-a:vendor"}, 1),
        ({"namespace_uri_pattern": "urn:*:plc"}, 2),
        ({"namespace_uri_pattern": r"re:^urn:press-\d+\..*:plc$"}, 2),
        ({"namespace_index": 0}, 0),
    ],
)
def test_namespace_by_uri_pattern_or_index(given: dict[str, object], index: int) -> None:
    assert resolve_namespace(OpcuaBinding.model_validate(given), ARRAY) == index


@pytest.mark.parametrize(
    "given",
    [
        {"namespace_uri": "urn:elsewhere:plc"},
        {"namespace_uri_pattern": "urn:*"},  # matches two: ambiguous
        {"namespace_index": 3},
    ],
)
def test_missing_or_ambiguous_namespace_names_the_server_array(given: dict[str, object]) -> None:
    with pytest.raises(NamespaceError) as err:
        resolve_namespace(OpcuaBinding.model_validate(given), ARRAY)
    assert "urn:press-7.plant.local:plc" in str(err.value)


def test_exactly_one_namespace_form() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OpcuaBinding.model_validate({"namespace_uri": "a", "namespace_index": 1})
    with pytest.raises(ValueError, match="namespace_uri_pattern"):
        OpcuaBinding.model_validate({"namespace_uri_pattern": "re:("})


def r(name: str, value: object) -> RawReading:
    return RawReading("S", {name: value})


def test_code_written_before_the_counter_joins_at_once() -> None:
    a = Assembler("Rej", "Code", 0.3)
    assert a.add(r("Rej", 0), 0.0) == []  # initial value waits for a code...
    assert a.due(0.3)[0].values == {"Rej": 0}  # ...then goes on without one (nothing changed)
    assert a.add(r("Code", "E07"), 1.0) == [r("Code", "E07")]
    assert a.add(r("Rej", 1), 1.0) == [RawReading("S", {"Rej": 1, "Code": "E07"})]
    assert a.uncoded == 0


def test_code_written_after_the_counter_is_waited_for_and_order_is_kept() -> None:
    a = Assembler("Rej", "Code", 0.3)
    a.add(r("Code", ""), 0.0)
    a.add(r("Rej", 0), 0.0)
    assert a.add(r("Rej", 1), 1.0) == []
    assert a.add(r("Good", 5), 1.1) == []  # queued behind the held total
    out = a.add(r("Code", "E12"), 1.2)
    assert [x.values for x in out] == [{"Rej": 1, "Code": "E12"}, {"Good": 5}, {"Code": "E12"}]


def test_repeated_code_is_taken_after_the_window_and_no_code_is_counted() -> None:
    a = Assembler("Rej", "Code", 0.3)
    a.add(r("Rej", 0), 0.0)
    a.due(1.0)
    assert a.add(r("Rej", 1), 1.0) == []
    assert a.due(1.2) == []
    assert [x.values for x in a.due(1.3)] == [{"Rej": 1}]
    assert a.uncoded == 1  # the total changed and no code was ever known
    a.add(r("Code", "E07"), 2.0)
    assert a.add(r("Rej", 2), 2.0)[0].values == {"Rej": 2, "Code": "E07"}
    a.add(r("Rej", 3), 3.0)  # same code again: no data change of Code
    assert [x.values for x in a.due(3.3)] == [{"Rej": 3, "Code": "E07"}]
    assert a.uncoded == 1


def test_without_a_code_variable_readings_pass_straight_through() -> None:
    a = Assembler(None, None, 0.3)
    assert a.add(r("Rej", 4), 0.0) == [r("Rej", 4)]
