"""``GET /metrics`` and ``--log-format json``, as an operator sees them: real server processes,
scraped with the Prometheus text parser; the JSON log lines of ``perdure dev``."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from srv_helpers import TOKEN, assert_error, clean_env, start_server, wait_run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    """The samples of ``/metrics``, by name and labels."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist: a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_metric(client: httpx.Client, name: str, want: float, **labels: str) -> Samples:
    """Scrape until the sample has the value ``want`` (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        samples = scrape(client)
        if value(samples, name, **labels) == want:
            return samples
        assert time.monotonic() < deadline, (name, labels, value(samples, name, **labels))
        time.sleep(0.1)


def test_server_metrics_need_the_token_and_show_the_unclaimed_backlog(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        ["server", "--app", "srv_obs_app:app"],
        f"sqlite:///{tmp_path}/perdure.db",
        env=clean_env(PERDURE_API_TOKEN=TOKEN),
    )
    try:
        for headers, fragment in [
            ({}, "needs an API token"),
            ({"Authorization": "Bearer wrong"}, "not valid"),
        ]:
            r = httpx.get(f"{server.url}/metrics", headers=headers)
            assert_error(r, 401, "unauthorized", fragment)
        assert httpx.get(f"{server.url}/health").status_code == 200
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as c:
            # No worker in `perdure server`: the runs stay due and unclaimed.
            for who in ("a", "b"):
                r = c.post("/api/v1/functions/greet/runs", json={"data": {"who": who}})
                assert r.status_code == 201, r.text
            assert c.get("/api/v1/runs/nope").status_code == 404
            assert c.get("/no/such/route").status_code == 404
            assert c.request("BREW", "/api/v1/runs").status_code == 405
            time.sleep(0.05)  # let the oldest due run age measurably
            samples = scrape(c)
            assert value(samples, "perdure_queue_depth", function="greet") == 2
            assert value(samples, "perdure_queue_lag_seconds", function="greet") > 0
            # The app's other functions have a series too, at 0.
            assert ("perdure_queue_depth", frozenset({("function", "boom")})) in samples
            assert value(samples, "perdure_queue_depth", function="boom") == 0
            assert value(samples, "perdure_workers_alive") == 0
            http = "perdure_http_requests_total"
            route = "/api/v1/functions/{function_id}/runs"
            assert value(samples, http, route=route, method="POST", status="201") == 2
            run_route = "/api/v1/runs/{run_id}"
            assert value(samples, http, route=run_route, method="GET", status="404") == 1
            assert value(samples, http, route="unmatched", method="GET", status="404") == 1
            assert value(samples, http, route="/api/v1/runs", method="other", status="405") == 1
            # Refused before routing, still counted under the route asked for.
            assert value(samples, http, route="/metrics", method="GET", status="401") == 2
    finally:
        assert server.stop(signal.SIGINT) == 0, server.stderr()
    assert "Traceback" not in server.stderr()


def _status_of(db: Path, function_id: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT status FROM runs WHERE function_id = ?", (function_id,))
        found = row.fetchone()
    return None if found is None else str(found[0])


def _stalled_run(tmp_path: Path, db: Path) -> None:
    """A run of ``stall`` whose worker was killed while it ran (its lease of 1 s expires)."""
    url = f"sqlite:///{db}"
    env = clean_env(SRVOBS_HANG="1")
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "perdure.cli", "worker", "srv_obs_app:app"),
            *("--lease", "1", "--log-format", "json"),
        ],
        cwd=tmp_path,
        env={**env, "PERDURE_DATABASE_URL": url, "PERDURE_LOG_LEVEL": "info"},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the worker has registered the functions: an event finds them
            sent = subprocess.run(
                [sys.executable, "-m", "perdure.cli", "send", "obs/stall", "--json"],
                cwd=tmp_path,
                env={**env, "PERDURE_DATABASE_URL": url},
                capture_output=True,
                text=True,
            )
            if sent.returncode == 0 and json.loads(sent.stdout)["events"][0]["run_ids"]:
                break
            assert sent.returncode == 0 or "no database" in sent.stderr, sent.stderr
            assert time.monotonic() < deadline and worker.poll() is None, "no worker"
            time.sleep(0.1)
        while _status_of(db, "stall") != "running":
            assert time.monotonic() < deadline and worker.poll() is None, "never claimed"
            time.sleep(0.05)
    finally:
        worker.kill()
        worker.wait()
        assert worker.stderr is not None
        err = worker.stderr.read().decode()
        worker.stderr.close()
    # `perdure worker --log-format json`: its banner line too.
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(line["message"].startswith("worker ") for line in lines), err


def test_dev_counts_runs_steps_takeovers_and_logs_json_lines(tmp_path: Path) -> None:
    db = tmp_path / "perdure.db"
    _stalled_run(tmp_path, db)
    dev = start_server(
        tmp_path, ["dev", "--app", "srv_obs_app:app", "--log-format", "json"], f"sqlite:///{db}"
    )
    try:
        with httpx.Client(base_url=dev.url, timeout=30) as c:
            runs: dict[str, list[str]] = {}
            for fid, n in [("greet", 2), ("boom", 1), ("nap", 1), ("limited", 2)]:
                for i in range(n):
                    r = c.post(f"/api/v1/functions/{fid}/runs", json={"data": {"who": str(i)}})
                    assert r.status_code == 201, r.text
                    runs.setdefault(fid, []).append(r.json()["run_id"])
            for run_id in runs["greet"]:
                assert wait_run(c, run_id)["status"] == "completed"
            assert wait_run(c, runs["boom"][0])["status"] == "failed"
            assert wait_run(c, runs["limited"][0])["status"] == "completed"
            assert wait_run(c, runs["limited"][1], ("skipped",))["status"] == "skipped"
            # Skipped by an event sent here too.
            r = c.post("/api/v1/events", json={"name": "obs/limited", "data": {}})
            assert r.status_code == 200, r.text
            [event] = r.json()["events"]
            assert event["skipped"] == event["run_ids"] and len(event["run_ids"]) == 1
            wait_run(c, runs["nap"][0], ("sleeping",))
            assert c.post(f"/api/v1/runs/{runs['nap'][0]}/cancel").status_code == 200
            assert c.post(f"/api/v1/runs/{runs['nap'][0]}/cancel").status_code == 200  # again

            # The killed worker's run: taken over here once its lease expired, then completed.
            samples = wait_metric(
                c, "perdure_runs_ended_total", 1, function="stall", status="completed"
            )
            assert value(samples, "perdure_lease_takeovers_total", function="stall") == 1
            assert value(samples, "perdure_runs_started_total", function="stall") == 0

            ended = "perdure_runs_ended_total"
            started = "perdure_runs_started_total"
            assert value(samples, started, function="greet") == 2
            assert value(samples, ended, function="greet", status="completed") == 2
            assert value(samples, started, function="boom") == 1
            assert value(samples, ended, function="boom", status="failed") == 1
            assert value(samples, started, function="nap") == 1
            assert value(samples, ended, function="nap", status="cancelled") == 1
            assert value(samples, started, function="limited") == 1
            assert value(samples, ended, function="limited", status="completed") == 1
            assert value(samples, ended, function="limited", status="skipped") == 2
            assert value(samples, "perdure_lease_takeovers_total", function="greet") == 0
            steps = "perdure_step_duration_seconds_count"
            assert value(samples, steps, function="greet", kind="run") == 2
            assert value(samples, steps, function="stall", kind="run") == 1
            assert value(samples, "perdure_workers_alive") == 1
            assert value(samples, "perdure_queue_depth", function="greet") == 0
    finally:
        assert dev.stop(signal.SIGINT) == 0, dev.stderr()

    lines = [json.loads(line) for line in dev.stderr().splitlines() if line.strip()]
    assert lines, "no log line"
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line
        assert line["ts"].endswith("Z")
    run_id = runs["greet"][0]
    mine = [line for line in lines if line.get("run_id") == run_id]
    in_step = [line for line in mine if line["message"].startswith("hello from the step")]
    after = [line for line in mine if line["message"].startswith("greeted in")]
    assert len(in_step) == 1 and len(after) == 1, mine
    assert in_step[0]["step_id"] == "hello" and in_step[0]["function_id"] == "greet"
    assert in_step[0]["attempt"] == 0 and in_step[0]["logger"] == "srvobs"
    assert in_step[0]["level"] == "WARNING"
    assert "step_id" not in after[0] and after[0]["function_id"] == "greet"
