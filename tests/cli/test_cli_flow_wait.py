"""``perdure runs show`` of a due run blocked by a concurrency limit prints why (the computed
``reason``), in text and JSON, on both backends."""

from __future__ import annotations

import asyncio
import json

from cli_helpers import perdure_many

import perdure


async def hold_a_slot(url: str) -> str:
    """A global limit of 1; one run leased (300 s), the other due and blocked."""
    app = perdure.App("w", url)

    @app.function(id="report", concurrency=1)
    async def report(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        first = await app.start("report")
        second = await app.start("report")
        claim = await app.store.claim("holder", ["report"], 5, 300.0)
        assert [r.id for r in claim.runs] == [first.run_id]
    return second.run_id


def test_runs_show_prints_why_a_run_waits(db_url: str) -> None:
    run_id = asyncio.run(hold_a_slot(db_url))
    db = ["--database-url", db_url]
    text, as_json = perdure_many(
        [["runs", "show", run_id, *db], ["runs", "show", run_id, "--json", *db]]
    )
    assert text.returncode == 0, text.stderr
    (line,) = [ln for ln in text.stdout.splitlines() if ln.startswith("reason")]
    assert line == (
        "reason   concurrency waiting: waiting for a concurrency slot: key c:report, 1 of 1 running"
    )
    reason = json.loads(as_json.stdout)["reason"]
    assert (reason["key"], reason["running"], reason["limit"]) == ("c:report", 1, 1)
