"""Error mapping, in process: an unavailable database is 503 with Retry-After, a bug is a 500
without details, and neither leaks a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from srv_helpers import assert_error

import perdure
from perdure.server import create_app


@pytest.fixture
async def app(sqlite_url: str) -> AsyncIterator[perdure.App]:
    app = perdure.App("errs", sqlite_url)

    @app.function()
    async def noop(ctx: perdure.Context) -> None:
        return None

    async with app:
        await app.register()
        yield app


def client_for(app: perdure.App, **kwargs: Any) -> httpx.AsyncClient:
    asgi = create_app(app, dev=True, api_token=None, **kwargs)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://localhost")


async def test_database_unavailable_is_503_with_retry_after(app: perdure.App) -> None:
    async with client_for(app) as c:
        assert (await c.get("/health")).status_code == 200
        await app.store.close()  # the database goes away under the server
        r = await c.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and r.json()["database"]
        assert int(r.headers["retry-after"]) > 0
        for method, path, body in [
            ("GET", "/api/v1/runs", None),
            ("GET", "/api/v1/functions", None),
            ("GET", "/api/v1/events", None),
            ("POST", "/api/v1/events", {"name": "x.y"}),
            ("GET", "/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV", None),
        ]:
            r = await c.request(method, path, json=body)
            assert_error(r, 503, "unavailable", "database")
            assert int(r.headers["retry-after"]) > 0


async def test_an_unexpected_error_is_a_bare_500(
    app: perdure.App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(**kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.query, "list_runs", broken)
    async with client_for(app) as c:
        r = await c.get("/api/v1/runs")
    message = assert_error(r, 500, "internal_error")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert "logged" in message
    assert any("secret internals" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


async def test_create_app_checks_its_token(app: perdure.App) -> None:
    create_app(app, dev=False, api_token=None)  # keys from the database only
    with pytest.raises(ValueError, match="empty"):
        create_app(app, dev=False, api_token="  ")
    with pytest.raises(ValueError, match="no authentication"):
        create_app(app, dev=True, api_token="s3cret-token")


async def test_smaller_event_limit_is_enforced(sqlite_url: str) -> None:
    app = perdure.App("limits", sqlite_url, limits=perdure.Limits(event=200))
    async with app, client_for(app) as c:
        r = await c.post("/api/v1/events", json={"name": "x.y", "data": {"s": "a" * 300}})
        assert_error(r, 413, "payload_too_large", "200 bytes")
        r = await c.post("/api/v1/events", json={"name": "x.y", "data": {"s": "a"}})
        assert r.status_code == 200
        events = (await c.get("/api/v1/events")).json()["events"]
        assert [e["data"] for e in events] == [{"s": "a"}]
