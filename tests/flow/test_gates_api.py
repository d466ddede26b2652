"""Creation-time flow control over HTTP, against a real ``perdure dev`` process: the send
answer lists skipped runs, ``GET /api/v1/runs/{id}`` shows the reason and a batch's events."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from srv_helpers import ServerProcess, clean_env, start_server, wait_run


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    workdir = tmp_path_factory.mktemp("gates")
    env = clean_env(PYTHONPATH=str(Path(__file__).resolve().parent))
    server: ServerProcess = start_server(
        workdir, ["dev", "--app", "gates_srv_app:app"], f"sqlite:///{workdir}/p.db", env
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            yield c
    finally:
        assert server.stop() == 0, server.stderr()
        assert "Traceback" not in server.stderr()


def test_a_rate_limited_event_answers_skipped_and_the_run_says_why(
    client: httpx.Client,
) -> None:
    events = [{"name": "gates/signed-up", "data": {"user": "ann"}} for _ in range(2)]
    r = client.post("/api/v1/events", json=events)
    assert r.status_code == 200, r.text
    first, second = r.json()["events"]
    assert first["skipped"] == [] and len(first["run_ids"]) == 1
    assert second["skipped"] == second["run_ids"] and len(second["run_ids"]) == 1
    run = client.get(f"/api/v1/runs/{second['run_ids'][0]}").json()
    assert run["status"] == "skipped"
    assert run["reason"]["option"] == "rate_limit"
    assert run["reason"]["decision"] == "skipped"
    assert run["reason"]["key"] == "ann"
    assert run["error"]["type"] == "RunSkipped"
    assert run["started_at"] is None and run["ended_at"] is not None
    listed = client.get("/api/v1/runs", params={"status": "skipped"}).json()["runs"]
    assert [x["id"] for x in listed] == second["run_ids"]
    assert wait_run(client, first["run_ids"][0])["output"] == "ann"


def test_a_batch_run_shows_its_events(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/events", json=[{"name": "gates/mail", "data": {"n": n}} for n in (1, 2)]
    )
    assert r.status_code == 200, r.text
    a, b = r.json()["events"]
    assert a["run_ids"] == b["run_ids"]
    run = wait_run(client, a["run_ids"][0])
    assert run["output"] == [1, 2]
    assert [e["data"]["n"] for e in run["events"]] == [1, 2]
    assert run["event"]["id"] == a["id"]
