"""``GET /api/v1/runs/{id}`` of a due run blocked by a concurrency limit says which one (key,
live count, limit), through a real ``perdure server`` process, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from srv_helpers import start_server

import perdure
from perdure.server import responses


async def hold_a_slot(url: str) -> tuple[str, str]:
    """Two runs of one customer under a per-customer limit of 1; the first leased (300 s)."""
    app = perdure.App("w", url)

    @app.function(id="pay", concurrency=perdure.Concurrency(1, key="event.data.customer"))
    async def pay(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        first = await app.start("pay", {"customer": "c1"})
        second = await app.start("pay", {"customer": "c1"})
        claim = await app.store.claim("holder", ["pay"], 5, 300.0)
        assert [r.id for r in claim.runs] == [first.run_id]
    return first.run_id, second.run_id


def test_a_blocked_run_says_which_limit_it_waits_for(db_url: str, tmp_path: Path) -> None:
    first, second = asyncio.run(hold_a_slot(db_url))
    server = start_server(tmp_path, ["server", "--no-auth"], db_url)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            r = client.get(f"/api/v1/runs/{second}")
            assert r.status_code == 200, r.text
            body = r.json()
            responses.Run.model_validate(body)
            assert body["status"] == "queued"
            assert body["reason"] == {
                "option": "concurrency",
                "decision": "waiting",
                "message": "waiting for a concurrency slot: key c:pay:c1, 1 of 1 running",
                "key": "c:pay:c1",
                "running": 1,
                "limit": 1,
            }
            held = client.get(f"/api/v1/runs/{first}").json()
            assert held["status"] == "running" and held["reason"] is None
    finally:
        assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()
