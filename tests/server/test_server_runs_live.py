"""The runs search filters, bulk actions and the live stream over a real ``perdure dev``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from srv_helpers import ServerProcess, assert_error, start_server, wait_run


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("live")
    server = start_server(
        workdir, ["dev", "--app", "srv_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def start(client: httpx.Client, fn: str, data: dict[str, Any]) -> str:
    r = client.post(f"/api/v1/functions/{fn}/runs", json={"data": data})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


def ids(client: httpx.Client, **params: Any) -> list[str]:
    r = client.get("/api/v1/runs", params=params)
    assert r.status_code == 200, r.text
    return [run["id"] for run in r.json()["runs"]]


def test_filters_select_by_text_id_time_and_event(client: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    a = start(client, "echo", {"who": f"Alice-{marker}"})
    b = start(client, "echo", {"who": f"bob-{marker}"})
    assert ids(client, text=marker) == [b, a]
    assert ids(client, text=f"alice-{marker}") == [a]  # ASCII letters ignore case
    assert ids(client, text=marker, run_id=a) == [a]
    assert ids(client, text=marker, run_id=a[:-1]) in ([a], [b, a])  # a prefix
    created = wait_run(client, a)["created_at"]
    wait_run(client, b)
    ms = int(datetime.fromisoformat(created).timestamp() * 1000)
    assert ids(client, text=marker, created_after=ms + 3_600_000) == []
    assert ids(client, text=marker, created_before=ms - 3_600_000) == []
    assert ids(client, text=marker, created_after=ms - 60_000) == [b, a]
    assert a in ids(client, text=marker, created_after=ms, created_before=ms + 1)
    assert ids(client, text=marker, status="completed", limit=1) == [b]
    event = f"ev-{marker}"
    r = client.post("/api/v1/events", json={"name": "test/ping", "id": event, "data": {"n": 1}})
    assert r.status_code == 200, r.text
    [started] = r.json()["events"][0]["run_ids"]
    assert ids(client, event_id=event) == [started]


def test_bad_filters_are_400(client: httpx.Client) -> None:
    for params, fragment in [
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "1" * 15}, "created_before"),
        ({"text": "x" * 300}, "text"),
        ({"status": "lost"}, "status"),
        ({"colour": "red"}, "colour"),
    ]:
        assert_error(client.get("/api/v1/runs", params=params), 400, "invalid_input", fragment)
        r = client.get("/api/v1/runs/stream", params=params)
        assert_error(r, 400, "invalid_input", fragment)
    r = client.get("/api/v1/runs/stream", params={"watch": ",".join(["A"] * 501)})
    assert_error(r, 400, "invalid_input", "watch")


def test_bulk_cancel_then_rerun_with_dry_runs(client: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    naps = [start(client, "nap", {"m": marker, "i": i}) for i in range(3)]
    done = start(client, "echo", {"m": marker})
    wait_run(client, done)
    for run_id in naps:
        wait_run(client, run_id, ("sleeping",))
    r = client.post("/api/v1/runs/bulk/cancel", json={"text": marker, "dry_run": True})
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["dry_run"] and dry["matched"] == 3 and dry["more"] is False
    assert sorted(dry["run_ids"]) == sorted(naps) and dry["limit"] == 100
    assert all(wait_run(client, i, ("sleeping",))["status"] == "sleeping" for i in naps)
    r = client.post("/api/v1/runs/bulk/cancel", json={"text": marker})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["run_ids"]) == sorted(naps) and r.json()["failed"] == []
    assert all(client.get(f"/api/v1/runs/{i}").json()["status"] == "cancelled" for i in naps)
    again = client.post("/api/v1/runs/bulk/cancel", json={"text": marker, "dry_run": True})
    assert again.json()["matched"] == 0
    dry = client.post(
        "/api/v1/runs/bulk/rerun", json={"text": marker, "function_id": "echo", "dry_run": True}
    ).json()
    assert dry["run_ids"] == [done] and dry["new_run_ids"] == []
    r = client.post("/api/v1/runs/bulk/rerun", json={"text": marker, "function_id": "echo"})
    assert r.status_code == 200, r.text
    [new] = r.json()["new_run_ids"]
    assert wait_run(client, new)["rerun_of"] == done


def test_bulk_bad_bodies_are_400(client: httpx.Client) -> None:
    for body, fragment in [
        ({"dry_run": "yes"}, "dry_run"),
        ({"limit": 5}, "limit"),
        ({"created_after": -1}, "created_after"),
        ([1], "array"),
    ]:
        r = client.post("/api/v1/runs/bulk/cancel", json=body)
        assert_error(r, 400, "invalid_input", fragment)


def read_stream(
    client: httpx.Client, params: dict[str, Any], until: Any, act: Any = None
) -> list[dict[str, Any]]:
    """Open the stream, call ``act()`` once it is connected, collect its run messages until
    ``until(messages)`` holds (30 s deadline)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    with client.stream("GET", "/api/v1/runs/stream", params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line == ": connected" and act is not None:
                act()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "run":
                messages.append(json.loads(line[6:]))
                if until(messages):
                    return messages
            assert time.monotonic() < deadline, messages
    raise AssertionError(f"the stream ended: {messages}")


def test_stream_pushes_new_runs_and_their_changes(client: httpx.Client) -> None:
    marker = uuid.uuid4().hex
    started: list[str] = []

    def act() -> None:
        started.append(start(client, "echo", {"m": marker}))

    def complete(messages: list[dict[str, Any]]) -> bool:
        return any(m["run"]["status"] == "completed" for m in messages)

    params = {"new": "1", "text": marker, "since": "0"}
    messages = read_stream(client, params, complete, act)
    assert {m["run"]["id"] for m in messages} == set(started)
    assert all(m["matches"] for m in messages)
    # a watched run that stops matching is still sent, with matches false
    nap = start(client, "nap", {"m": marker})
    wait_run(client, nap, ("sleeping",))

    def cancel() -> None:
        assert client.post(f"/api/v1/runs/{nap}/cancel").status_code == 200

    params = {"watch": nap, "status": "sleeping"}
    messages = read_stream(
        client, params, lambda ms: ms[-1]["run"]["status"] == "cancelled", cancel
    )
    assert messages[-1]["run"]["id"] == nap and messages[-1]["matches"] is False
