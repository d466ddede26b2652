"""The official Inngest TypeScript SDK (``inngest`` 4.x on npm, an Express app in ``ts/``)
served against a real ``perdure dev`` subprocess, for the tests in ``test_ts_*.py``.

The Node packages are installed by ``scripts/install-ts-sdk`` (``.ci/run`` calls it). When
``node`` or the packages are missing, the tests fail if ``CI`` or ``PERDURE_REQUIRE_TS_SDK=1`` is
set, and are skipped with a message otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from polling import eventually
from sdk_apps import free_port

TS_DIR = Path(__file__).parent / "ts"
APP_ID = "its"
DEADLINE = 60.0


def ts_sdk_problem() -> str | None:
    """Why the TS SDK tests cannot run here (``None`` if they can)."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/install-ts-sdk installs it)"
    if not (TS_DIR / "node_modules" / "inngest" / "package.json").is_file():
        return "the npm packages are not installed: run scripts/install-ts-sdk"
    return None


def require_ts_sdk() -> None:
    problem = ts_sdk_problem()
    if problem is None:
        return
    if os.environ.get("CI") or os.environ.get("PERDURE_REQUIRE_TS_SDK") == "1":
        pytest.fail(f"the Inngest TypeScript SDK is required here: {problem}")
    pytest.skip(f"Inngest TypeScript SDK tests skipped: {problem}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
        proc.kill()
        proc.wait()
        raise


@dataclass
class World:
    """A running Node app and the ``perdure dev`` it syncs with."""

    http: httpx.Client  # perdure
    node: httpx.Client  # the Node app (its /state, /reset, /send)
    checkpointing: bool
    dev_log: Path
    node_log: Path
    app_id: str = APP_ID

    def send(self, name: str, data: dict[str, Any] | None = None) -> str:
        """Send an event with ``POST /e/{key}``; its id."""
        r = self.http.post("/e/test-key", json={"name": name, "data": data or {}})
        assert r.status_code == 200, r.text
        (event_id,) = r.json()["ids"]
        return str(event_id)

    def sdk_send(self, payload: Any) -> list[str]:
        """Send events with the SDK's own client (``inngest.send`` in the Node app)."""
        r = self.node.post("/send", json=payload)
        assert r.status_code == 200, r.text
        return list(r.json()["ids"])

    def runs_of(self, event_id: str) -> list[str]:
        for page in [self.http.get("/v1/events", params={"limit": 100}).json()["data"]]:
            for e in page:
                if e["id"] == event_id:
                    return list(e["run_ids"])
        return []

    def trigger(self, name: str, data: dict[str, Any] | None = None) -> str:
        """Send an event that starts one run; the run's id."""
        event_id = self.send(name, data)
        (run_id,) = eventually(f"the run of {name}", lambda: self.runs_of(event_id))
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()["data"]
        return data

    def native(self, run_id: str) -> dict[str, Any]:
        """The run as perdure's own API shows it (steps included)."""
        r = self.http.get(f"/api/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def ended(self, run_id: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["status"] in ("Completed", "Failed", "Cancelled") else None

        return eventually(f"run {run_id} to end", done)

    def status(self, run_id: str, status: str) -> None:
        eventually(
            f"run {run_id} to be {status}",
            lambda: self.native(run_id)["status"] == status,
        )

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = self.node.get("/state").json()
        return data

    def functions(self) -> set[str]:
        try:
            r = self.http.get("/api/v1/functions")
        except httpx.TransportError:
            return set()
        if r.status_code != 200:
            return set()
        return {f["id"] for f in r.json()["functions"] if f["app"] == self.app_id}


@contextmanager
def ts_world(
    tmp: Path,
    *,
    checkpointing: bool,
    script: str = "app.js",
    app_id: str = APP_ID,
    functions: int = 16,
    database_url: str | None = None,
) -> Iterator[World]:
    """Start the Node app ``ts/<script>`` (``INNGEST_DEV=1``, ``INNGEST_BASE_URL`` at perdure)
    and ``perdure dev -u <app>`` on ``database_url`` (a fresh SQLite file by default); wait
    until the app synced its ``functions`` functions."""
    require_ts_sdk()
    database_url = database_url or f"sqlite:///{tmp}/dev.db"
    perdure_port, node_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{perdure_port}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
    node_env = {
        **base,
        "INNGEST_DEV": "1",
        "INNGEST_BASE_URL": origin,
        "PORT": str(node_port),
        "APP_ID": app_id,
        "CHECKPOINTING": "1" if checkpointing else "0",
    }
    node_log, dev_log = tmp / "node.log", tmp / "dev.log"
    with node_log.open("wb") as out:
        node = subprocess.Popen(
            ["node", str(TS_DIR / script)], cwd=TS_DIR, env=node_env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        app_url = f"http://127.0.0.1:{node_port}"
        with httpx.Client(base_url=app_url, timeout=30) as node_http:

            def listening() -> bool:
                try:
                    return node_http.get("/state").status_code == 200
                except httpx.TransportError:
                    assert node.poll() is None, node_log.read_text()
                    return False

            eventually("the Node app to listen", listening)
            dev_env = {**base, "INNGEST_NO_POLL": "1"}
            with dev_log.open("wb") as err:
                dev = subprocess.Popen(
                    [
                        sys.executable, "-m", "perdure.cli", "dev", "--port", str(perdure_port),
                        "--database-url", database_url, "--log-level", "info",
                        "-u", f"{app_url}/api/inngest",
                    ],
                    cwd=tmp, env=dev_env, stdout=subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
            try:
                with httpx.Client(base_url=origin, timeout=30) as http:
                    world = World(http, node_http, checkpointing, dev_log, node_log, app_id)
                    eventually("the TS app to sync", lambda: len(world.functions()) >= functions)
                    yield world
            finally:
                _stop(dev)
    finally:
        _stop(node)
