"""Helpers for the server tests: real server subprocesses, polling, error checks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
TOKEN = "t0ken-for-the-tests-0123456789"
START_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any PERDURE_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A running server subprocess."""

    proc: subprocess.Popen[bytes]
    url: str
    db_url: str
    out: Path
    err: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process and return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the server did not stop within 20 s") from None
        return self.proc.returncode

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def start_server(
    workdir: Path, args: list[str], db_url: str, env: dict[str, str] | None = None
) -> ServerProcess:
    """Start ``python -m perdure.cli ARGS --port 0``, wait for the banner and ``/health``."""
    out, err = workdir / "server.out", workdir / "server.err"
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perdure.cli",
                *args,
                "--port",
                "0",
                "--database-url",
                db_url,
                "--log-level",
                "warning",
            ],
            cwd=workdir,
            env=env or clean_env(),
            stdout=fout,
            stderr=ferr,
        )
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while url is None:
        match = re.search(r"http://127\.0\.0\.1:\d+", out.read_text(errors="replace"))
        if match:
            url = match.group(0)
        elif proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"server did not start: {err.read_text(errors='replace')}")
        else:
            time.sleep(0.05)
    server = ServerProcess(proc, url, db_url, out, err)
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop(signal.SIGKILL)
            raise AssertionError(f"/health never answered 200: {server.stderr()}")
        time.sleep(0.05)


def wait_run(
    client: httpx.Client,
    run_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll ``GET /api/v1/runs/{id}`` until the run is in one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/runs/{run_id}")
        assert r.status_code == 200, r.text
        run: dict[str, Any] = r.json()
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} stayed {run['status']}")
        time.sleep(0.05)


def assert_error(r: httpx.Response, status: int, code: str, *fragments: str) -> str:
    """The response is the error shape with ``status`` and ``code``; return the message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in r.text
    return message
