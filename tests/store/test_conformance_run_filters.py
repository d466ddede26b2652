"""Conformance: the runs listing's filters (time range, id prefix, event id, input text,
ended), on every backend, and their Python twin :meth:`RunFilter.matches`."""

from __future__ import annotations

import pytest

from conftest import STORE_T0 as START
from perdure import serde
from perdure.store.base import NewRun, RunFilter, RunRow, Store
from perdure.testing import ManualClock


def run(run_id: str, fid: str, data: dict[str, object], event_id: str) -> NewRun:
    body = serde.dumps({"id": event_id, "name": "shop/order", "data": data, "user": {}, "ts": 1})
    return NewRun(run_id, fid, body, event_id=event_id)


async def seeded(store: Store, clock: ManualClock) -> list[RunRow]:
    """Six runs, one second apart: r0..r5 (ids 01AA0, 01AA1, ..., 01AB5)."""
    specs: list[tuple[str, str, dict[str, object], str]] = [
        ("01AA0", "f", {"customer": "Alice", "total": 10}, "ev-1"),
        ("01AA1", "g", {"customer": "bob", "note": "Ünïcode Straße"}, "ev-2"),
        ("01AA2", "f", {"customer": "ALICE", "total": 99}, "ev-1"),
        ("01AB3", "f", {"customer": "carol"}, "ev-3"),
        ("01AB4", "g", {"customer": "dave", "tag": "100%_done"}, "ev-4"),
        ("01AB5", "f", {"customer": "erin"}, "ev-5"),
    ]
    for run_id, fid, data, ev in specs:
        await store.create_runs([run(run_id, fid, data, ev)])
        await clock.advance(1.0)
    await store.cancel_run("01AA1")
    await store.cancel_run("01AB4")
    rows = await store.list_runs(RunFilter(limit=100))
    assert [r.id for r in rows] == ["01AB5", "01AB4", "01AB3", "01AA2", "01AA1", "01AA0"]
    return rows


CASES: list[tuple[RunFilter, list[str]]] = [
    (RunFilter(created_after=START + 2), ["01AB5", "01AB4", "01AB3", "01AA2"]),
    (RunFilter(created_before=START + 2), ["01AA1", "01AA0"]),
    (RunFilter(created_after=START + 1, created_before=START + 3), ["01AA2", "01AA1"]),
    (RunFilter(id_prefix="01AB"), ["01AB5", "01AB4", "01AB3"]),
    (RunFilter(id_prefix="01AA2"), ["01AA2"]),
    (RunFilter(id_prefix="01AC"), []),
    (RunFilter(event_id="ev-1"), ["01AA2", "01AA0"]),
    (RunFilter(event_id="ev-1", function_id="g"), []),
    (RunFilter(text="alice"), ["01AA2", "01AA0"]),  # ASCII letters ignore case
    (RunFilter(text='"total":99'), ["01AA2"]),  # the input's JSON text
    (RunFilter(text="straße"), ["01AA1"]),
    (RunFilter(text="STRASSE"), []),
    (RunFilter(text="ünïcode"), []),  # other letters keep their case
    (RunFilter(text="Ünïcode"), ["01AA1"]),
    (RunFilter(text="100%_"), ["01AB4"]),  # no wildcards
    (RunFilter(text="0%_d", function_id="f"), []),
    (RunFilter(ended=True), ["01AB4", "01AA1"]),
    (RunFilter(ended=False), ["01AB5", "01AB3", "01AA2", "01AA0"]),
    (RunFilter(ended=False, function_id="g"), []),
    (RunFilter(status="cancelled", text="dave"), ["01AB4"]),
    (RunFilter(text="customer", before="01AB3", limit=2), ["01AA2", "01AA1"]),
    (RunFilter(text="\x00"), []),
    (RunFilter(id_prefix="\x00"), []),
]


@pytest.mark.parametrize(("flt", "expected"), CASES)
async def test_run_filters(
    store: Store, clock: ManualClock, flt: RunFilter, expected: list[str]
) -> None:
    rows = await seeded(store, clock)
    assert [r.id for r in await store.list_runs(flt)] == expected
    # the Python twin agrees (cursor and limit aside)
    twin = [r.id for r in rows if flt.matches(r) and (flt.before is None or r.id < flt.before)]
    assert twin[: flt.limit] == expected
