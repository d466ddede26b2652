"""The dashboard's read API over a real ``perdure dev`` process: an event's detail (the runs
it started and resumed) and a function's recent statistics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from srv_helpers import ServerProcess, assert_error, start_server, wait_run

from perdure.types import RunStatus


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("dash")
    server = start_server(
        workdir, ["dev", "--app", "srv_dash_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def send(client: httpx.Client, name: str, data: dict[str, object], eid: str) -> list[str]:
    r = client.post("/api/v1/events", json={"name": name, "data": data, "id": eid})
    assert r.status_code == 200, r.text
    run_ids: list[str] = r.json()["events"][0]["run_ids"]
    return run_ids


def test_an_event_shows_the_runs_it_started_and_resumed(client: httpx.Client) -> None:
    order = uuid.uuid4().hex[:8]
    placed_id, shipped_id = f"placed-{order}", f"shipped-{order}"
    [run_id] = send(client, "dash/order.placed", {"order": order}, placed_id)
    wait_run(client, run_id, ("waiting",))
    # an event for another order resumes nothing
    send(client, "dash/order.shipped", {"order": "other", "carrier": "x"}, f"o-{order}")
    assert send(client, "dash/order.shipped", {"order": order, "carrier": "ups"}, shipped_id) == []
    run = wait_run(client, run_id)
    assert run["status"] == "completed" and run["output"] == {"order": order, "carrier": "ups"}

    placed = client.get(f"/api/v1/events/{placed_id}")
    assert placed.status_code == 200, placed.text
    body = placed.json()
    assert body["id"] == placed_id and body["data"] == {"order": order}
    assert body["run_ids"] == [run_id]
    assert [(r["id"], r["function_id"], r["status"]) for r in body["started"]] == [
        (run_id, "ship", "completed")
    ]
    assert body["resumed"] == []

    shipped = client.get(f"/api/v1/events/{shipped_id}").json()
    assert shipped["started"] == [] and shipped["run_ids"] == []
    assert [(r["run_id"], r["step_id"], r["run"]["status"]) for r in shipped["resumed"]] == [
        (run_id, "shipped", "completed")
    ]
    other = client.get(f"/api/v1/events/o-{order}").json()
    assert other["resumed"] == [] and other["started"] == []


def test_an_unknown_event_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/events/no-such-event"), 404, "event_not_found", "no-such")
    assert_error(client.get("/api/v1/events/a%00b"), 400, "invalid_input", "NUL")
    assert_error(client.get("/api/v1/events/x?limit=3"), 400, "invalid_input")


def test_function_stats_count_the_recent_runs(client: httpx.Client) -> None:
    empty = client.get("/api/v1/functions/timed/stats")
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "function_id": "timed",
        "window": 1000,
        "runs": 0,
        "statuses": {s.value: 0 for s in RunStatus},
        "success_rate": None,
        "duration": {"p50": None, "p95": None, "p99": None},
    }
    inputs = [{"seconds": 0}, {"seconds": 0}, {"seconds": 0.6}, {"seconds": 0, "fail": True}]
    ids = []
    for data in inputs:
        r = client.post("/api/v1/functions/timed/runs", json={"data": data})
        assert r.status_code == 201, r.text
        ids.append(r.json()["run_id"])
    ended = [wait_run(client, i)["status"] for i in ids]
    assert ended == ["completed", "completed", "completed", "failed"]
    stats = client.get("/api/v1/functions/timed/stats").json()
    assert stats["runs"] == 4
    assert stats["statuses"]["completed"] == 3 and stats["statuses"]["failed"] == 1
    assert stats["success_rate"] == 0.75
    duration = stats["duration"]
    assert duration["p99"] >= 0.6 and duration["p95"] >= 0.6  # the slow run is the top 25 %
    assert 0 <= duration["p50"] < 0.6


def test_stats_of_an_unknown_function_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/functions/nope/stats"), 404, "function_not_found", "nope")
    # a function's own routes still answer
    assert client.get("/api/v1/functions/timed").status_code == 200
