"""A real ``perdure dev`` subprocess (which can be SIGKILLed and started again on the same
database) and SDK apps served in threads of the test's process: FastAPI by uvicorn, Flask by
werkzeug's threaded server. For ``test_kinds_sdk.py`` and ``test_sdk_sigkill.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from polling import eventually
from sdk_apps import free_port
from werkzeug.serving import make_server

HERE = Path(__file__).resolve().parent
DEADLINE = 60.0
ENDED = ("completed", "failed", "cancelled")


class FlaskServed:
    """A WSGI app served by werkzeug (one thread per request) on a free port."""

    def __init__(self, wsgi: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server("127.0.0.1", self.port, wsgi, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="flask-app", daemon=True
        )

    def __enter__(self) -> FlaskServed:
        self.thread.start()  # the socket listens already (make_server binds it)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


class DevServer:
    """``perdure dev`` on ``port`` and ``database_url``, syncing ``sdk_urls`` (``-u``, no
    polling), with the native functions of ``app_spec``; ``lease``: the worker's (short, so
    that the runs of a killed server resume soon after a restart; default: perdure's)."""

    def __init__(
        self,
        tmp: Path,
        port: int,
        database_url: str,
        sdk_urls: Sequence[str],
        *,
        app_spec: str | None = None,
        lease: float | None = None,
    ) -> None:
        self.tmp = tmp
        self.origin = f"http://127.0.0.1:{port}"
        self.args = [
            sys.executable, "-m", "perdure.cli", "dev", "--port", str(port),
            "--database-url", database_url, "--log-level", "warning", "--no-poll",
            *(a for u in sdk_urls for a in ("-u", u)),
            *(("--lease", str(lease)) if lease is not None else ()),
            *(("--app", app_spec) if app_spec else ()),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
        self.env = env
        self.log = tmp / "dev.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.origin, timeout=30)

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                self.args, cwd=self.tmp, env=self.env, stdout=subprocess.DEVNULL, stderr=err
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease given back."""
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            proc.kill()
            proc.wait()
            raise

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.http.close()

    # ------------------------------------------------------------------ reads

    def get(self, path: str) -> httpx.Response | None:
        """``GET path``; ``None`` while the server does not answer (starting)."""
        try:
            return self.http.get(path)
        except httpx.TransportError:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            return None

    def functions(self, app_id: str) -> set[str]:
        r = self.get("/api/v1/functions")
        if r is None or r.status_code != 200:
            return set()
        return {f["id"] for f in r.json()["functions"] if f["app"] == app_id}

    def synced(self, app_id: str, count: int) -> None:
        what = f"{count} functions of {app_id} to sync"
        eventually(what, lambda: len(self.functions(app_id)) >= count)

    def send(self, name: str, data: dict[str, Any] | None = None) -> str:
        """``POST /e/{key}``: the event's id."""
        r = self.http.post("/e/test-key", json={"name": name, "data": data or {}})
        assert r.status_code == 200, r.text
        (event_id,) = r.json()["ids"]
        return str(event_id)

    def trigger(self, name: str, data: dict[str, Any] | None = None) -> str:
        """Send an event that starts one run; the run's id."""
        event_id = self.send(name, data)

        def runs() -> list[str] | None:
            r = self.get(f"/v1/events/{event_id}/runs")
            return [x["run_id"] for x in r.json()["data"]] if r and r.status_code == 200 else None

        (run_id,) = eventually(f"the run of {name}", runs)
        return run_id

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run as perdure's API shows it (with its steps); ``None`` while unreachable."""
        r = self.get(f"/api/v1/runs/{run_id}")
        if r is None:
            return None
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def until(self, run_id: str, ok: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run is not None and ok(run) else None

        return eventually(f"run {run_id} {what}", check)

    def ended(self, run_id: str) -> dict[str, Any]:
        return self.until(run_id, lambda r: r["status"] in ENDED, "to end")

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """The runs ``run_id`` invoked."""
        r = self.http.get("/api/v1/runs", params={"limit": 200})
        assert r.status_code == 200, r.text
        return [x for x in r.json()["runs"] if x["parent_run_id"] == run_id]
