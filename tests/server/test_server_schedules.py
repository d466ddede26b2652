"""The schedules REST API (``/api/v1/schedules``) of real server processes, over HTTP."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from srv_helpers import TOKEN, ServerProcess, assert_error, clean_env, start_server, wait_run


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``perdure dev --app srv_app:app`` (server and worker) on a fresh SQLite database."""
    workdir = tmp_path_factory.mktemp("sched")
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


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"id": unique(), "function_id": "echo", "cron": "0 9 * * *", **fields}
    r = client.post("/api/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/v1/schedules/{body['id']}"
    created: dict[str, Any] = r.json()
    return created


def test_create_get_and_list(client: httpx.Client) -> None:
    made = create(
        client,
        tz="Europe/Paris",
        data={"to": "ops"},
        overlap="allow",
        catchup="all",
        catchup_window=7200,
    )
    assert set(made) == {
        "id",
        "function_id",
        "cron",
        "tz",
        "data",
        "overlap",
        "catchup",
        "catchup_window",
        "paused",
        "last_tick",
        "next_tick",
        "last_run_id",
        "runs",
        "skipped_overlap",
        "missed",
        "created_at",
        "updated_at",
    }
    assert (made["function_id"], made["cron"], made["tz"], made["data"]) == (
        "echo",
        "0 9 * * *",
        "Europe/Paris",
        {"to": "ops"},
    )
    assert (made["overlap"], made["catchup"], made["catchup_window"]) == ("allow", "all", 7200.0)
    assert made["paused"] is False and made["runs"] == 0 and made["last_run_id"] is None
    assert made["next_tick"].endswith(":00:00Z")
    r = client.get(f"/api/v1/schedules/{made['id']}")
    assert r.status_code == 200 and r.json() == made
    # defaults
    plain = create(client)
    assert (plain["tz"], plain["data"], plain["overlap"], plain["catchup"]) == (
        "UTC",
        {},
        "skip",
        "latest",
    )
    assert plain["catchup_window"] == 86400.0
    ids = {made["id"], plain["id"]}
    listed = client.get("/api/v1/schedules", params={"function_id": "echo", "limit": 500})
    assert listed.status_code == 200
    assert ids <= {s["id"] for s in listed.json()["schedules"]}


def test_pages_follow_the_cursor(client: httpx.Client) -> None:
    for _ in range(3):
        create(client, function_id="paged")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"function_id": "paged", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/api/v1/schedules", params=params).json()
        seen += [s["id"] for s in page["schedules"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) >= 3 and seen == sorted(seen)


def test_pause_resume_and_trigger(client: httpx.Client) -> None:
    made = create(client, data={"k": "v"})
    sid = made["id"]
    r = client.post(f"/api/v1/schedules/{sid}/pause")
    assert r.status_code == 200 and r.json()["paused"] is True and r.json()["next_tick"] is None
    r = client.post(f"/api/v1/schedules/{sid}/trigger")
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["created"] is True
    assert r.headers["location"] == f"/api/v1/runs/{started['run_id']}"
    run = wait_run(client, started["run_id"])
    assert run["status"] == "completed"
    assert run["output"]["data"] == {"k": "v"}
    assert run["event"]["name"] == "perdure/scheduled.timer"
    assert run["event"]["schedule"]["id"] == sid and run["event"]["schedule"]["manual"] is True
    r = client.post(f"/api/v1/schedules/{sid}/resume")
    assert r.status_code == 200
    after = r.json()
    assert after["paused"] is False and after["next_tick"] is not None
    assert after["runs"] == 1 and after["last_run_id"] == started["run_id"]


def test_a_tick_runs_and_delete_stops_it(client: httpx.Client) -> None:
    made = create(client, cron="* * * * * *", overlap="allow", data={"every": "second"})
    sid = made["id"]
    deadline = time.monotonic() + 30
    while True:
        info = client.get(f"/api/v1/schedules/{sid}").json()
        if info["runs"] >= 1:
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.05)
    run = wait_run(client, info["last_run_id"])
    assert run["output"]["data"] == {"every": "second"}
    tick = run["event"]["schedule"]
    assert tick["id"] == sid and tick["manual"] is False
    assert run["idempotency_key"].startswith(f"schedule:{sid}:")
    r = client.delete(f"/api/v1/schedules/{sid}")
    assert r.status_code == 204 and r.content == b""
    assert_error(client.get(f"/api/v1/schedules/{sid}"), 404, "schedule_not_found", sid)
    assert_error(client.delete(f"/api/v1/schedules/{sid}"), 404, "schedule_not_found")


@pytest.mark.parametrize(
    ("fields", "status", "code", "fragment"),
    [
        ({"function_id": "ghost"}, 404, "function_not_found", "'ghost'"),
        ({"cron": "61 * * * *"}, 400, "invalid_cron", "minute"),
        ({"cron": "0 9 * *"}, 400, "invalid_cron", "4 fields"),
        ({"tz": "Mars/Olympus"}, 400, "invalid_cron", "unknown time zone"),
        ({"overlap": "queue"}, 400, "invalid_input", "overlap must be one of 'skip', 'allow'"),
        ({"catchup": "every"}, 400, "invalid_input", "catchup must be one of"),
        ({"catchup_window": -1}, 400, "invalid_input", "catchup_window must be at least 0"),
        ({"catchup_window": "1h"}, 400, "invalid_input", "catchup_window"),
        ({"data": [1]}, 400, "invalid_input", "data must be a JSON object"),
        ({"paused": "yes"}, 400, "invalid_input", "paused"),
        ({"id": "a b"}, 400, "invalid_input", "schedule id 'a b' must be 1-128 characters"),
        ({"id": "x" * 129}, 400, "invalid_input", "schedule id"),
        ({"extra": 1}, 400, "invalid_input", "unknown field(s): extra"),
    ],
)
def test_bad_schedules_are_refused_precisely(
    client: httpx.Client, fields: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    sid = unique("bad")
    body = {"id": sid, "function_id": "echo", "cron": "0 9 * * *", **fields}
    assert_error(client.post("/api/v1/schedules", json=body), status, code, fragment)
    if isinstance(body["id"], str) and " " not in body["id"] and len(body["id"]) <= 128:
        assert_error(client.get(f"/api/v1/schedules/{sid}"), 404, "schedule_not_found")


def test_a_taken_id_is_a_conflict(client: httpx.Client) -> None:
    made = create(client)
    again = {"id": made["id"], "function_id": "nap", "cron": "@hourly"}
    assert_error(client.post("/api/v1/schedules", json=again), 409, "schedule_exists", made["id"])
    assert client.get(f"/api/v1/schedules/{made['id']}").json()["function_id"] == "echo"


def test_bodies_and_queries_are_checked(client: httpx.Client) -> None:
    assert_error(client.post("/api/v1/schedules", json=[1]), 400, "invalid_input", "an array")
    r = client.post("/api/v1/schedules", content=b"{", headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_json")
    assert_error(client.post("/api/v1/schedules", json={"id": "x"}), 400, "invalid_input")
    assert_error(
        client.get("/api/v1/schedules", params={"cursor": "a b"}),
        400,
        "invalid_input",
        "is not a schedules cursor",
    )
    assert_error(client.get("/api/v1/schedules", params={"limit": "0"}), 400, "invalid_input")
    assert_error(
        client.get("/api/v1/schedules", params={"nope": "1"}), 400, "invalid_input", "'nope'"
    )
    assert_error(client.put("/api/v1/schedules", json={}), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/trigger")],
)
def test_unknown_schedules_are_404(client: httpx.Client, method: str, suffix: str) -> None:
    for sid in ("no-such-schedule", "not%20valid"):
        r = client.request(method, f"/api/v1/schedules/{sid}{suffix}")
        assert_error(r, 404, "schedule_not_found")


def test_the_openapi_document_describes_the_routes(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/api/v1/schedules"]) == {"get", "post"}
    assert set(paths["/api/v1/schedules/{schedule_id}"]) == {"get", "delete"}
    post = paths["/api/v1/schedules"]["post"]
    assert {"201", "400", "404", "409"} <= set(post["responses"])
    schema = doc["components"]["schemas"]["ScheduleIn"]
    assert set(schema["required"]) == {"id", "function_id", "cron"}
    assert schema["properties"]["overlap"]["enum"] == ["skip", "allow"]


def test_a_server_with_a_token_guards_the_schedules(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    workdir = tmp_path_factory.mktemp("secured")
    server = start_server(
        workdir,
        ["server", "--app", "srv_app:app"],
        f"sqlite:///{workdir}/perdure.db",
        env=clean_env(PERDURE_API_TOKEN=TOKEN),
    )
    try:
        body = {"id": "guarded", "function_id": "echo", "cron": "@daily"}
        with httpx.Client(base_url=server.url, timeout=30) as anonymous:
            assert_error(anonymous.post("/api/v1/schedules", json=body), 401, "unauthorized")
            assert_error(anonymous.get("/api/v1/schedules"), 401, "unauthorized")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as c:
            assert c.post("/api/v1/schedules", json=body).status_code == 201
            assert [s["id"] for s in c.get("/api/v1/schedules").json()["schedules"]] == ["guarded"]
    finally:
        assert server.stop(signal.SIGINT) == 0, server.stderr()
