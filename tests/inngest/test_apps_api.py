"""``GET /api/v1/apps`` and ``POST /api/v1/apps/{id}/resync`` over ``perdure dev`` with an app
on the real Inngest Python SDK (FastAPI, served by uvicorn), and a ``-u`` URL nobody serves."""

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
from polling import eventually
from sdk_apps import Served, client, fastapi_app, free_port, simple_functions


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    c = client("appsapi", origin)
    app = fastapi_app({"/v1": (c, simple_functions(c, "one", "two"))})
    dead = f"http://127.0.0.1:{free_port()}/api/inngest"
    served = Served(app)
    served.__enter__()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
    err = tmp_path / "dev.err"
    with err.open("wb") as ferr:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "perdure.cli", "dev", "--port", str(port),
                "--database-url", f"sqlite:///{tmp_path}/dev.db", "--log-level", "warning",
                "--no-poll", "--no-discovery",
                "-u", f"{served.url}/v1/api/inngest", "-u", dead,
            ],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=ferr,
        )  # fmt: skip
    try:
        with httpx.Client(base_url=origin, timeout=30) as http:
            yield {"http": http, "served": served, "dead": dead, "err": err}
    finally:
        served.__exit__(None, None, None)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            proc.kill()
            raise
    assert "Traceback" not in err.read_text(), err.read_text()


def apps(http: httpx.Client) -> dict[str | None, dict[str, Any]]:
    try:
        r = http.get("/api/v1/apps")
    except httpx.TransportError:
        return {}
    assert r.status_code == 200, r.text
    return {a["id"]: a for a in r.json()["apps"]}


def test_apps_list_their_sync_and_resync_with_the_python_sdk(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    url = f"{world['served'].url}/v1/api/inngest"

    def synced() -> dict[str | None, dict[str, Any]] | None:
        listed = apps(http)
        ready = "appsapi" in listed and None in listed and listed[None]["last_attempt"]
        return listed if ready else None

    listed = eventually("the -u app to sync and the dead URL to fail", synced)
    app = listed["appsapi"]
    assert app["url"] == url
    assert app["functions"] == ["appsapi-one", "appsapi-two"] and app["function_count"] == 2
    assert app["sdk"] and app["sdk"].startswith("py:")
    assert app["framework"] == "fast_api"
    assert app["last_synced_at"] is not None and app["last_error"] is None
    assert app["last_attempt"]["ok"] is True
    dead = listed[None]
    assert dead["url"] == world["dead"] and dead["functions"] == []
    assert dead["last_attempt"]["source"] == "poll" and dead["last_attempt"]["ok"] is False
    assert "unreachable" in dead["last_error"]

    # a resync: perdure PUTs the app's URL, the SDK registers again
    r = http.post("/api/v1/apps/appsapi/resync")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sync"]["ok"] is True and body["sync"]["source"] == "resync"
    assert body["sync"]["error"] is None
    assert body["app"]["last_synced_at"] > app["last_synced_at"]
    assert body["app"]["last_error"] is None

    # the app goes away: the resync fails and says why
    world["served"].__exit__(None, None, None)
    r = http.post("/api/v1/apps/appsapi/resync", json={})
    assert r.status_code == 200, r.text
    failed = r.json()
    assert failed["sync"]["ok"] is False and "unreachable" in failed["sync"]["error"]
    assert failed["app"]["last_error"] == failed["sync"]["error"]
    assert failed["app"]["functions"] == ["appsapi-one", "appsapi-two"]  # still registered
    assert apps(http)["appsapi"]["last_error"] == failed["sync"]["error"]


def test_resync_of_an_unknown_app_is_404(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    eventually("the server", lambda: apps(http) or None)
    r = http.post("/api/v1/apps/nope/resync")
    assert r.status_code == 404 and r.json()["error"]["code"] == "app_not_found", r.text
    r = http.post("/api/v1/apps/nope/resync", json={"x": 1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", r.text
