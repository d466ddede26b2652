"""A newcomer's first minute: ``perdure dev`` with the bundled demo, then ``perdure send``."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from cli_helpers import assert_one_line_error, clean_env, perdure


def start_dev(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``perdure dev --port 0`` in ``tmp_path`` with ``env``; its process and output files."""
    out, err = tmp_path / "dev.out", tmp_path / "dev.err"
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "perdure.cli", "dev", "--port", "0"],
            cwd=tmp_path,
            env=clean_env(PERDURE_LOG_LEVEL="warning", **env),
            stdout=fout,
            stderr=ferr,
        )
    return proc, out, err


def wait_banner(proc: subprocess.Popen[bytes], out: Path, err: Path, deadline: float) -> str:
    """The base URL the dev server's banner announces (waiting for it until ``deadline``)."""
    while not (match := re.search(r"http://127\.0\.0\.1:\d+", out.read_text())):
        assert proc.poll() is None, err.read_text()
        assert time.monotonic() < deadline, "no banner"
        time.sleep(0.05)
    return match.group(0)


def test_dev_serves_the_demo_and_runs_complete(tmp_path: Path) -> None:
    url_db = f"sqlite:///{tmp_path}/demo.db"
    proc, out, err = start_dev(tmp_path, PERDURE_DATABASE_URL=url_db)
    try:
        deadline = time.monotonic() + 30
        base = wait_banner(proc, out, err, deadline)
        banner = out.read_text().splitlines()[0]
        assert "'demo'" in banner and base in banner and url_db in banner
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "no /health"
            time.sleep(0.05)

        sent = perdure(
            "send",
            "demo/order.placed",
            "--data",
            '{"order_id": "A1"}',
            "--json",
            env=clean_env(PERDURE_DATABASE_URL=url_db),
        )
        assert sent.returncode == 0, sent.stderr
        [event] = json.loads(sent.stdout)["events"]
        assert len(event["run_ids"]) == 2  # fulfil-order and track-delivery

        runs: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60
        while True:
            runs = {
                run_id: httpx.get(f"{base}/api/v1/runs/{run_id}").json()
                for run_id in event["run_ids"]
            }
            by_fn = {r["function_id"]: r for r in runs.values()}
            if by_fn["fulfil-order"]["status"] == "completed" and (
                by_fn["track-delivery"]["status"] == "waiting"
            ):
                break
            assert by_fn["fulfil-order"]["status"] not in ("failed", "cancelled"), by_fn
            assert time.monotonic() < deadline, by_fn
            time.sleep(0.2)
        fulfil = by_fn["fulfil-order"]
        assert fulfil["output"]["order_id"] == "A1"
        steps = {s["id"]: s for s in fulfil["steps"]}
        assert steps["charge-card"]["attempts"] == 2  # the flaky step was retried
        assert steps["wait-for-courier"]["kind"] == "sleep"

        delivered = perdure(
            "send",
            "demo/order.delivered",
            "--data",
            '{"order_id": "A1"}',
            env=clean_env(PERDURE_DATABASE_URL=url_db),
        )
        assert delivered.returncode == 0, delivered.stderr
        track_id = by_fn["track-delivery"]["id"]
        deadline = time.monotonic() + 30
        while (run := httpx.get(f"{base}/api/v1/runs/{track_id}").json())["status"] != (
            "completed"
        ):
            assert time.monotonic() < deadline, run
            time.sleep(0.1)
        assert run["output"]["delivered"] is True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.read_text()
    assert "Traceback" not in err.read_text()


def test_dev_reports_a_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = perdure("dev", "--port", str(port), "--database-url", f"sqlite:///{tmp_path}/x.db")
    message = assert_one_line_error(r, 1)
    assert f"127.0.0.1:{port}" in message


def test_dev_serves_only_the_allowed_hosts(tmp_path: Path) -> None:
    url_db = f"sqlite:///{tmp_path}/demo.db"
    proc, out, err = start_dev(
        tmp_path, PERDURE_DATABASE_URL=url_db, PERDURE_ALLOWED_HOSTS="perdure.test"
    )
    try:
        base = wait_banner(proc, out, err, time.monotonic() + 60)
        deadline = time.monotonic() + 60
        while True:
            try:
                ok = httpx.get(f"{base}/api/v1/runs", headers={"Host": "perdure.test"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no answer"
                time.sleep(0.05)
        assert ok.status_code == 200, ok.text
        refused = httpx.get(f"{base}/api/v1/runs")  # Host: 127.0.0.1:PORT is not on the list
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "host_not_allowed"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
