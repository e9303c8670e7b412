"""The worker's cases table: the digest a clock carries matches exactly the states it was saved
with, so a recovery can tell a consistent table from one cut between a save's states and its
clock."""

from __future__ import annotations

from streams.domain.case import CaseState
from streams.worker.app import TableStates


def _saved(table: dict[str, bytes], states: TableStates) -> int:
    """Write ``states``' changes into ``table`` as the worker's save does; the digest after."""
    for key, value in states.changes():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return states.digest


def test_a_recovered_table_has_the_digest_of_its_last_save() -> None:
    table: dict[str, bytes] = {"1|C9": b"other partitions are not read"}
    states = TableStates(table, 0)
    for i in range(5):
        states[f"C{i}"] = CaseState(f"C{i}", seen={f"e{i}": 1_000 * i}, latest=1_000 * i)
    first = _saved(table, states)
    states["C1"] = CaseState("C1", seen={"e1": 1_000, "e9": 9_000}, latest=9_000)
    del states["C2"]
    second = _saved(table, states)
    assert second != first
    recovered = TableStates(table, 0)
    assert recovered.digest == second
    assert sorted(recovered) == ["C0", "C1", "C3", "C4"]


def test_a_table_cut_between_states_and_clock_has_another_digest() -> None:
    table: dict[str, bytes] = {}
    states = TableStates(table, 0)
    for i in range(3):
        states[f"C{i}"] = CaseState(f"C{i}", seen={f"e{i}": i}, latest=i)
    saved = _saved(table, states)
    newer = dict(table)
    states["C1"] = CaseState("C1", seen={}, latest=1)  # pruned at a later save...
    for key, value in states.changes():  # ...whose states were written, not its clock
        assert value is not None
        newer[key] = value
    assert TableStates(newer, 0).digest != saved
    assert TableStates(table, 0).digest == saved


def test_discarded_states_are_deleted_at_the_next_save() -> None:
    table: dict[str, bytes] = {}
    states = TableStates(table, 0)
    states["C1"] = CaseState("C1", seen={"e": 1}, latest=1)
    _saved(table, states)
    recovered = TableStates(table, 0)
    recovered.discard()
    assert len(recovered) == 0
    assert _saved(table, recovered) == 0
    assert table == {}
