"""Flow control seen through a real ``perdure dev`` process: ``GET /api/v1/functions/{id}``
shows the options, ``GET /api/v1/runs/{id}`` the reason of a run that cancel_on or a timeout
cancelled (and both match the OpenAPI models)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from srv_helpers import ServerProcess, start_server, wait_run

from perdure.server import responses


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir: Path = tmp_path_factory.mktemp("devflow")
    server = start_server(
        workdir, ["dev", "--app", "srv_flow_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def test_a_function_shows_its_flow_options(client: httpx.Client) -> None:
    r = client.get("/api/v1/functions/fulfil")
    assert r.status_code == 200, r.text
    body = r.json()
    responses.Function.model_validate(body)
    assert body["flow"] == {
        "cancel_on": [
            {"event": "shop/order.cancelled", "if": None, "match": "data.order", "timeout": 86400.0}
        ],
        "timeouts": {"start": 600.0, "finish": None},
    }
    missing = client.get("/api/v1/functions/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "function_not_found"


def test_a_run_cancelled_by_an_event_says_why(client: httpx.Client) -> None:
    r = client.post("/api/v1/events", json={"name": "shop/order.placed", "data": {"order": "o9"}})
    assert r.status_code == 200, r.text
    (run_id,) = r.json()["events"][0]["run_ids"]
    wait_run(client, run_id, ("sleeping",))
    r = client.post(
        "/api/v1/events", json={"name": "shop/order.cancelled", "data": {"order": "o9"}}
    )
    event_id = r.json()["ids"][0]
    run = wait_run(client, run_id, ("cancelled",))
    responses.Run.model_validate(run)
    assert run["reason"] == {
        "option": "cancel_on",
        "decision": "cancelled",
        "message": f"cancelled by event shop/order.cancelled ({event_id})",
        "event_id": event_id,
        "event_name": "shop/order.cancelled",
    }
    assert run["error"]["type"] == "RunCancelled" or "cancel" in run["error"]["message"].lower()


def test_a_run_past_its_finish_timeout_says_why(client: httpx.Client) -> None:
    r = client.post("/api/v1/functions/slowpoke/runs", json={})
    assert r.status_code == 201, r.text
    run = wait_run(client, r.json()["run_id"], ("cancelled",), timeout=30)
    assert run["reason"]["option"] == "timeouts"
    assert run["reason"]["message"] == "did not finish within 1s"
    listed = client.get("/api/v1/runs", params={"status": "cancelled", "function_id": "slowpoke"})
    assert [x["reason"]["timeout"] for x in listed.json()["runs"]] == ["finish"]
