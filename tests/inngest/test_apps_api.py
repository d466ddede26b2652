"""``GET /api/v1/apps`` and ``POST /api/v1/apps/{id}/resync`` over ``perdure dev`` with an app
on the real Inngest Python SDK (FastAPI, served by uvicorn), and a ``-u`` URL nobody serves; the
sync state is the database's, so a second server of the same database reports it too."""

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


class Dev:
    """A ``perdure dev`` subprocess on ``database_url`` syncing ``urls`` (``-u``, no polling,
    no discovery), its stderr in ``tmp``."""

    def __init__(self, tmp: Path, database_url: str, urls: list[str], port: int = 0) -> None:
        self.port = port or free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        tmp.mkdir(parents=True, exist_ok=True)
        self.err = tmp / "dev.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
        with self.err.open("wb") as ferr:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "perdure.cli", "dev", "--port", str(self.port),
                    "--database-url", database_url, "--log-level", "warning",
                    "--no-poll", "--no-discovery", *(a for u in urls for a in ("-u", u)),
                ],
                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=ferr,
            )  # fmt: skip
        self.http = httpx.Client(base_url=self.origin, timeout=30)

    def apps(self) -> dict[str | None, dict[str, Any]]:
        assert self.proc.poll() is None, self.err.read_text()
        return apps(self.http)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
                self.proc.kill()
                raise
        assert "Traceback" not in self.err.read_text(), self.err.read_text()


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


def test_a_second_server_of_the_database_reports_the_syncs_and_errors(
    tmp_path: Path, db_url: str
) -> None:
    port = free_port()
    c = client("appsapi", f"http://127.0.0.1:{port}")
    served = Served(fastapi_app({"/v1": (c, simple_functions(c, "one", "two"))})).__enter__()
    url = f"{served.url}/v1/api/inngest"
    dead = f"http://127.0.0.1:{free_port()}/api/inngest"
    first = Dev(tmp_path / "a", db_url, [url, dead], port)
    second: Dev | None = None
    try:

        def synced() -> dict[str | None, dict[str, Any]] | None:
            listed = first.apps()
            ready = "appsapi" in listed and None in listed and listed[None]["last_attempt"]
            return listed if ready else None

        app = eventually("the -u app to sync on the first server", synced)["appsapi"]
        assert app["last_synced_at"] is not None and app["sdk"].startswith("py:")

        # A second server, started afterwards, with no -u: it sent nothing, yet it knows
        # when the app synced, with which SDK and framework (it does not list the first
        # server's -u URL that never registered: that is the first server's to poll).
        second = Dev(tmp_path / "b", db_url, [])
        listed = eventually("the second server", lambda: second.apps() if second else None)
        assert set(listed) == {"appsapi"}, listed
        fields = ("url", "functions", "sdk", "framework", "last_synced_at", "last_attempt")

        def agreed() -> dict[str, Any] | None:
            # The first server keeps polling its -u URL (each poll is a new attempt): read
            # both servers until they are read between two polls.
            assert second is not None
            seen, there = second.apps()["appsapi"], first.apps()["appsapi"]
            return seen if all(seen[f] == there[f] for f in fields) else None

        seen = eventually("both servers to report the same sync", agreed)
        assert seen["url"] == app["url"] and seen["sdk"] == app["sdk"]
        assert seen["last_synced_at"] is not None
        assert seen["last_error"] is None and seen["last_attempt"]["ok"] is True

        # The app goes away; a resync through the second server fails, and the first
        # server reports that error (and still the last sync).
        served.__exit__(None, None, None)
        r = second.http.post("/api/v1/apps/appsapi/resync")
        assert r.status_code == 200, r.text
        failure = r.json()["sync"]
        assert failure["ok"] is False and "unreachable" in failure["error"]
        there = first.apps()["appsapi"]
        assert there["last_error"] == failure["error"]
        assert there["last_attempt"] == failure and failure["source"] == "resync"
        assert there["last_synced_at"] == app["last_synced_at"]

        # Restarted, the first server still reports the dead URL's last poll and the app's
        # last error before it polls again (it starts polling once it is up: either the
        # stored attempt or the new one, both failed).
        first.stop()
        first = Dev(tmp_path / "a2", db_url, [dead], port)
        listed = eventually("the restarted server", lambda: first.apps() or None)
        again = listed["appsapi"]
        assert again["last_error"] == failure["error"]
        assert again["last_synced_at"] == app["last_synced_at"]
        assert again["sdk"] == app["sdk"] and again["framework"] == app["framework"]
        assert listed[None]["url"] == dead and "unreachable" in listed[None]["last_error"]

        # Removed, the app is listed by neither server: its sync row went with it.
        r = first.http.delete("/fn/remove", params={"app": "appsapi"})
        assert r.status_code == 200 and r.json()["removed"] == ["appsapi-one", "appsapi-two"]
        assert second.apps() == {} and set(first.apps()) == {None}
    finally:
        served.__exit__(None, None, None)
        first.stop()
        if second is not None:
            second.stop()
