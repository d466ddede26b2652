"""``perdure dev`` with apps on the real Inngest Python SDK (FastAPI, served by uvicorn): sync by
``-u`` and by PUT, a re-sync that drops a function, events sent with the SDK's client, the
Inngest routes the SDKs and their harnesses read. Execution is the Inngest driver's (tested
with it); here runs must be *created* for the synced functions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inngest._internal.errors import SendEventsError  # the SDK does not export it
from polling import eventually
from sdk_apps import Served, client, fastapi_app, free_port, simple_functions

import inngest

DEADLINE = 30.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An SDK app (two versions of app 'e2e' at /v1 and /v2) and ``perdure dev -u`` for v1."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    c = client("e2e", origin)
    app = fastapi_app(
        {"/v1": (c, simple_functions(c, "one", "two")), "/v2": (c, simple_functions(c, "one"))}
    )
    with Served(app) as served:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
        env["INNGEST_NO_POLL"] = "1"  # the env twin of --no-poll
        err = tmp_path / "dev.err"
        with err.open("wb") as ferr:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "perdure.cli", "dev", "--port", str(port),
                    "--database-url", f"sqlite:///{tmp_path}/dev.db", "--log-level", "warning",
                    "-u", f"{served.url}/v1/api/inngest",
                ],
                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=ferr,
            )  # fmt: skip
        try:
            with httpx.Client(base_url=origin, timeout=10) as http:
                yield {"http": http, "client": c, "app": served.url, "proc": proc, "err": err}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
                proc.kill()
                raise


def function_ids(http: httpx.Client) -> set[str]:
    try:
        r = http.get("/api/v1/functions")
    except httpx.TransportError:
        return set()
    if r.status_code != 200:
        return set()
    return {f["id"] for f in r.json()["functions"] if f["app"] == "e2e"}  # not the demo's


def test_sync_resync_and_events_with_the_python_sdk(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    # -u: perdure PUTs the app's URL at start; the SDK registers both functions
    eventually("the -u app to sync", lambda: function_ids(http) == {"e2e-one", "e2e-two"})
    listed = {f["id"]: f for f in http.get("/api/v1/functions").json()["functions"]}
    assert listed["e2e-one"]["app"] == "e2e"
    assert listed["e2e-one"]["config"]["driver"] == "inngest"
    dev = http.get("/dev")
    assert dev.headers["x-inngest-server-kind"] == "dev"
    assert sorted(f["slug"] for f in dev.json()["functions"]) == ["e2e-one", "e2e-two"]

    # a re-sync by PUT (the app's v2 has only "one"): "two" is removed from the registry
    r = httpx.put(f"{world['app']}/v2/api/inngest", timeout=30)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert r.json()["modified"] is True
    eventually("the re-sync", lambda: function_ids(http) == {"e2e-one"})

    # events sent with the SDK's own client
    c: inngest.Inngest = world["client"]
    ids = c.send_sync(
        [inngest.Event(name="test/one", data={"n": 1}), inngest.Event(name="test/two")]
    )
    assert len(ids) == 2 and len(set(ids)) == 2

    def one_run() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = http.get(
            "/api/v1/runs", params={"function_id": "e2e-one"}
        ).json()["runs"]
        return runs or None

    (run,) = eventually("the run of e2e-one", one_run)
    assert run["event"]["id"] == ids[0] and run["event"]["data"] == {"n": 1}
    assert http.get("/api/v1/runs", params={"function_id": "e2e-two"}).json()["runs"] == []
    events = http.get("/v1/events", params={"name": "test/one"}).json()
    assert [e["id"] for e in events["data"]] == [ids[0]]
    assert events["data"][0]["run_ids"] == [run["id"]]
    got = http.get(f"/v1/runs/{run['id']}")
    assert got.status_code == 200 and got.json()["data"]["run_id"] == run["id"]
    assert got.json()["data"]["status"] in ("Queued", "Running", "Completed", "Failed")
    assert http.get("/v1/runs/01H00000000000000000000000").status_code == 404

    # the SDK's partial-failure contract: [valid, invalid, invalid] keeps the first
    with pytest.raises(SendEventsError) as info:
        c.send_sync(
            [inngest.Event(name="test/one"), inngest.Event(name=""), inngest.Event(name="")]
        )
    assert len(info.value.ids) == 1

    # DELETE /fn/remove drops the app
    gone = http.delete("/fn/remove", params={"url": f"{world['app']}/v2/api/inngest"})
    assert gone.json() == {"ok": True, "removed": ["e2e-one"]}
    assert function_ids(http) == set()
    # no server error, but the placeholder driver's (until the Inngest driver is merged)
    log = world["err"].read_text()
    assert log.count("Traceback") == log.count("NotImplementedError: the Inngest driver"), log


def test_register_and_event_routes_answer_as_the_sdks_read(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    eventually("the -u app to sync", lambda: function_ids(http) == {"e2e-one", "e2e-two"})
    bad = http.post("/fn/register", json={"appName": "x", "url": "http://h/api", "functions": 3})
    assert bad.status_code == 400
    assert bad.json() == {"data": None, "error": "functions must be an array, got a number",
                          "status": 400}  # fmt: skip
    kind = http.post("/fn/register", json={}, headers={"X-Inngest-Expected-Server-Kind": "cloud"})
    assert kind.status_code == 400 and kind.json()["error"] == "Expected server kind dev, got cloud"
    clash = {
        "appName": "other",
        "url": "http://127.0.0.1:1/api",
        "functions": [
            {
                "id": "e2e-one",
                "steps": {"step": {"runtime": {"type": "http", "url": "http://127.0.0.1:1/api"}}},
            }
        ],
    }
    conflict = http.post("/fn/register", json=clash)
    assert (
        conflict.status_code == 409
        and "belongs to the Inngest app 'e2e'" in conflict.json()["error"]
    )

    seed = {"X-Inngest-Event-Id-Seed": "1700000000000,AAECAwQFBgcI/w=="}
    first = http.post("/e/any-key", json=[{"name": "a/b"}, {"name": "a/c"}], headers=seed)
    again = http.post("/e/any-key", json=[{"name": "a/b"}, {"name": "a/c"}], headers=seed)
    assert first.status_code == 200 and first.json()["status"] == 200
    assert first.json()["ids"] == again.json()["ids"]  # a retried send gives the same ids
    assert http.post("/e/k", json={"name": "inngest/function.failed"}).json()["status"] == 400
    assert http.post("/e", json={"name": "a"}).json() == {
        "message": "", "error": "Event key is required", "status": 401,
    }  # fmt: skip
    assert http.post("/v0/connect/start").status_code == 200
