"""Operations over HTTP on a real ``perdure dev`` process: function pause and resume, the
workers registry (``/api/v1/workers``), and the remote client's pause and resume."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from srv_helpers import ServerProcess, assert_error, start_server, wait_run

import perdure


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("ops")
    server = start_server(workdir, ["dev", "--app", "srv_app:app"], f"sqlite:///{workdir}/p.db")
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def test_pause_and_resume_a_function(client: httpx.Client) -> None:
    r = client.get("/api/v1/functions/paged")
    assert r.status_code == 200 and r.json()["paused"] is False and r.json()["paused_at"] is None
    r = client.post("/api/v1/functions/paged/pause")
    assert r.status_code == 200, r.text
    fn = r.json()
    assert fn["id"] == "paged" and fn["paused"] is True and fn["paused_at"].endswith("Z")
    ids = []
    for i in range(3):
        started = client.post("/api/v1/functions/paged/runs", json={"data": {"i": i}})
        assert started.status_code == 201
        ids.append(started.json()["run_id"])
    # Another function's run completes while these stay queued.
    other = client.post("/api/v1/functions/echo/runs", json={"data": {"a": 1}}).json()["run_id"]
    assert wait_run(client, other)["status"] == "completed"
    assert [client.get(f"/api/v1/runs/{i}").json()["status"] for i in ids] == ["queued"] * 3
    listed = {f["id"]: f for f in client.get("/api/v1/functions").json()["functions"]}
    assert listed["paged"]["paused"] is True
    r = client.post("/api/v1/functions/paged/resume", json={})
    assert r.status_code == 200 and r.json()["paused"] is False
    runs = [wait_run(client, i) for i in ids]
    assert [run["output"] for run in runs] == [0, 1, 2]
    assert [run["started_at"] for run in runs] == sorted(run["started_at"] for run in runs)


def test_pause_errors(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/functions/nope/pause"), 404, "function_not_found", "nope")
    assert_error(client.post("/api/v1/functions/echo/pause", json={"x": 1}), 400, "invalid_input")
    assert_error(client.get("/api/v1/workers?all=maybe"), 400, "invalid_input")
    assert_error(client.get("/api/v1/workers?other=1"), 400, "invalid_input")


def test_workers_listing(client: httpx.Client, dev: ServerProcess) -> None:
    r = client.get("/api/v1/workers")
    assert r.status_code == 200, r.text
    [w] = r.json()["workers"]
    assert w["status"] == "live" and w["live"] is True and w["stopped_at"] is None
    assert {"echo", "paged", "nap"} <= set(w["functions"])
    assert w["slots"] > 0 and 0 <= w["slots_used"] <= w["slots"]
    assert w["pid"] == dev.proc.pid and w["host"]
    every = client.get("/api/v1/workers", params={"all": "true"}).json()["workers"]
    assert w["id"] in {x["id"] for x in every}


async def test_remote_client_pause_resume(dev: ServerProcess) -> None:
    async with perdure.Client(dev.url) as remote:
        state = await remote.pause("nap")
        assert state.function_id == "nap" and state.paused and state.paused_at is not None
        state = await remote.resume("nap")
        assert not state.paused and state.paused_at is None
        with pytest.raises(perdure.errors.FunctionNotFoundError):
            await remote.pause("no-such-function")
