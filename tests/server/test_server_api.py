"""The REST API of a real ``perdure dev`` process, over HTTP."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from srv_helpers import ServerProcess, assert_error, start_server, wait_run


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``perdure dev --app srv_app:app`` on a fresh SQLite database."""
    workdir = tmp_path_factory.mktemp("dev")
    server = start_server(
        workdir, ["dev", "--app", "srv_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    yield server
    status = server.stop()
    assert status == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the dev server."""
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


JSON = {"content-type": "application/json"}


def unique(prefix: str = "t") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def stored(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/events", params={"name": name})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


# ---------------------------------------------------------------------- health, meta


def test_health_reports_database_and_version(client: httpx.Client) -> None:
    import perdure

    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "version": perdure.__version__}


def test_unknown_route_and_wrong_method_are_json(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/nope"), 404, "not_found", "GET /api/v1/nope")
    assert_error(client.get("/nope"), 404, "not_found")
    r = client.delete("/api/v1/runs")
    assert_error(r, 405, "method_not_allowed", "DELETE")
    assert "GET" in r.headers["allow"]
    r = client.put("/api/v1/events", json={})
    assert_error(r, 405, "method_not_allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_root_redirects_to_the_dashboard(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 307
    assert r.headers["location"] == "/runs"
    r = client.get("/runs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/runs.js">' in r.text


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_openapi_document(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:
        validate = None
    if validate is not None:  # pragma: no cover - only where it is installed
        validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    expected = {
        "/health": {"get"},
        "/openapi.json": {"get"},
        "/metrics": {"get"},
        "/api/v1/events": {"get", "post"},
        "/api/v1/events/{event_id}": {"get"},
        "/api/v1/functions": {"get", "post"},
        "/api/v1/functions/{function_id}": {"get"},
        "/api/v1/functions/{function_id}/stats": {"get"},
        "/api/v1/functions/{function_id}/runs": {"post"},
        "/api/v1/functions/{function_id}/pause": {"post"},
        "/api/v1/functions/{function_id}/resume": {"post"},
        "/api/v1/workers": {"get"},
        "/api/v1/runs": {"get"},
        "/api/v1/runs/stream": {"get"},
        "/api/v1/runs/bulk/cancel": {"post"},
        "/api/v1/runs/bulk/rerun": {"post"},
        "/api/v1/runs/{run_id}": {"get"},
        "/api/v1/runs/{run_id}/cancel": {"post"},
        "/api/v1/runs/{run_id}/rerun": {"post"},
        "/api/v1/runs/{run_id}/replay": {"post"},
        "/api/v1/schedules": {"get", "post"},
        "/api/v1/apps": {"get"},
        "/api/v1/apps/{app_id}/resync": {"post"},
        "/api/v1/keys": {"get", "post"},
        "/api/v1/keys/{key_id}": {"delete"},
        "/api/v1/audit": {"get"},
        "/auth/login": {"post"},
        "/auth/logout": {"post"},
        "/auth/session": {"get"},
        "/api/v1/schedules/{schedule_id}": {"get", "delete"},
        "/api/v1/schedules/{schedule_id}/pause": {"post"},
        "/api/v1/schedules/{schedule_id}/resume": {"post"},
        "/api/v1/schedules/{schedule_id}/trigger": {"post"},
    }
    assert {p: set(ops) for p, ops in doc["paths"].items()} == expected
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["responses"], path
            for status in op["responses"]:
                assert status.isdigit(), (path, status)
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == {part[1:-1] for part in path.split("/") if part.startswith("{")}
    for ref in _refs(doc):
        assert ref.startswith("#/components/")
        node: Any = doc
        for part in ref[2:].split("/"):
            assert part in node, f"unresolved {ref}"
            node = node[part]
    # the dev server needs no token: no global security requirement
    assert "security" not in doc


# ---------------------------------------------------------------------- functions


def test_functions_lists_registered_functions(client: httpx.Client) -> None:
    r = client.get("/api/v1/functions")
    assert r.status_code == 200
    functions = {f["id"]: f for f in r.json()["functions"]}
    assert {"echo", "on-ping", "nap", "paged", "boom"} <= set(functions)
    assert functions["on-ping"]["triggers"] == [{"event": "test/ping"}]
    assert functions["on-ping"]["app"] == "srvtest"
    assert functions["boom"]["config"]["retries"] == 0


# ---------------------------------------------------------------------- events


def test_send_one_event_starts_a_run_that_completes(client: httpx.Client) -> None:
    r = client.post("/api/v1/events", json={"name": "test/ping", "data": {"n": 7}})
    assert r.status_code == 200, r.text
    body = r.json()
    [event_id] = body["ids"]
    [info] = body["events"]
    assert info["id"] == event_id and info["duplicate"] is False
    [run_id] = info["run_ids"]
    run = wait_run(client, run_id)
    assert run["status"] == "completed"
    assert run["output"] == "pong 7"
    assert run["function_id"] == "on-ping"
    assert run["event"]["id"] == event_id
    assert [s["id"] for s in run["steps"]] == ["see"]
    assert run["steps"][0]["output"] == 7
    listed = stored(client, "test/ping")
    mine = [e for e in listed if e["id"] == event_id]
    assert mine and mine[0]["run_ids"] == [run_id]
    assert mine[0]["data"] == {"n": 7} and mine[0]["received_at"].endswith("Z")


def test_send_an_array_keeps_order_and_deduplicates_ids(client: httpx.Client) -> None:
    name = unique()
    dup_id = uuid.uuid4().hex
    events = [
        {"name": name, "data": {"i": 0}, "id": dup_id, "ts": 1_700_000_000_000, "user": {"u": 1}},
        {"name": name, "data": {"i": 1}},
        {"name": name, "data": {"i": 2}, "id": dup_id},
    ]
    r = client.post("/api/v1/events", json=events)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["ids"]) == 3
    assert body["ids"][0] == dup_id == body["ids"][2]
    assert [e["duplicate"] for e in body["events"]] == [False, False, True]
    listed = stored(client, name)
    assert [e["data"]["i"] for e in listed] == [1, 0]  # newest first, duplicate not stored
    first = next(e for e in listed if e["id"] == dup_id)
    assert first["ts"] == 1_700_000_000_000 and first["user"] == {"u": 1}


def test_malformed_json_is_400_with_position_and_stores_nothing(client: httpx.Client) -> None:
    name = unique()
    r = client.post(
        "/api/v1/events",
        content=f'{{"name": "{name}", "data": {{"a": 1,}}}}',
        headers={"content-type": "application/json"},
    )
    message = assert_error(r, 400, "malformed_json", "not valid JSON", "line 1", "column")
    assert "byte" in message
    r = client.post("/api/v1/events", content=b"")
    assert_error(r, 400, "malformed_json", "empty")
    r = client.post("/api/v1/events", content=b"\xff\xfe{}", headers=JSON)
    assert_error(r, 400, "malformed_json")
    assert stored(client, name) == []


@pytest.mark.parametrize(
    ("payload", "fragments"),
    [
        ([], ("empty",)),
        (42, ("a number",)),
        ("x", ("a string",)),
        ({"data": {}}, ("name is required",)),
        ({"name": "has space"}, ("whitespace",)),
        ({"name": "a*b"}, ("'*'",)),
        ({"name": ""}, ("empty",)),
        ({"name": 5}, ("name",)),
        ({"name": "ok", "data": [1]}, ("data must be a JSON object",)),
        ({"name": "ok", "user": "me"}, ("user must be a JSON object",)),
        ({"name": "ok", "ts": -1}, ("ts",)),
        ({"name": "ok", "ts": 1.5}, ("ts",)),
        ({"name": "ok", "id": 12}, ("id",)),
        ({"name": "ok", "colour": "red"}, ("unknown event field", "colour")),
        ([{"name": "ok"}, 3], ("events[1]", "a number")),
        ([{"name": "ok"}, {"name": "bad name"}], ("events[1]", "whitespace")),
    ],
)
def test_invalid_events_are_400_and_nothing_is_stored(
    client: httpx.Client, payload: Any, fragments: tuple[str, ...]
) -> None:
    name = unique()

    def rename(item: Any) -> Any:
        if isinstance(item, dict) and item.get("name") == "ok":
            return {**item, "name": name}
        return item

    payload = [rename(p) for p in payload] if isinstance(payload, list) else rename(payload)
    r = client.post("/api/v1/events", json=payload)
    assert_error(r, 400, "invalid_input", *fragments)
    assert stored(client, name) == []


def test_an_event_over_the_limit_is_413_and_nothing_is_stored(client: httpx.Client) -> None:
    name = unique()
    big = {"name": name, "data": {"blob": "x" * (600 * 1024)}}
    r = client.post("/api/v1/events", json=[{"name": name, "data": {}}, big])
    assert_error(r, 413, "payload_too_large", "events[1]", "over the limit")
    assert stored(client, name) == []


def test_a_body_over_the_cap_is_413_and_nothing_is_stored(client: httpx.Client) -> None:
    name = unique()
    small = f'{{"name": "{name}", "data": {{"x": 1}}}}'
    payload = ("[" + ",".join([small] * 400_000) + "]").encode()
    assert len(payload) > 8 * 1024 * 1024
    r = client.post("/api/v1/events", content=payload, headers=JSON)
    assert_error(r, 413, "payload_too_large", "request body")

    def chunks() -> Any:  # no Content-Length: counted while streaming
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    r = client.post("/api/v1/events", content=chunks(), headers=JSON)
    assert_error(r, 413, "payload_too_large", "request body")
    assert stored(client, name) == []


def test_a_declared_huge_body_is_refused_before_reading_it(dev: ServerProcess) -> None:
    url = urlparse(dev.url)
    assert url.hostname is not None and url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n[{"
        )
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"payload_too_large" in body


def test_events_pagination_with_cursor(client: httpx.Client) -> None:
    name = unique()
    r = client.post("/api/v1/events", json=[{"name": name, "data": {"i": i}} for i in range(7)])
    assert r.status_code == 200
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"name": name, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/api/v1/events", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        seen += [e["data"]["i"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1, 0]
    assert pages == 3
    assert_error(
        client.get("/api/v1/events", params={"cursor": "abc"}), 400, "invalid_input", "cursor"
    )
    assert_error(client.get("/api/v1/events", params={"limit": "0"}), 400, "invalid_input", "limit")
    assert_error(client.get("/api/v1/events", params={"name": "a b"}), 400, "invalid_input")


# ---------------------------------------------------------------------- runs


def test_start_a_run_and_read_its_output(client: httpx.Client) -> None:
    r = client.post("/api/v1/functions/echo/runs", json={"data": {"a": 1}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True
    run_id = body["run_id"]
    assert r.headers["location"] == f"/api/v1/runs/{run_id}"
    run = wait_run(client, run_id)
    assert run["status"] == "completed"
    assert run["output"] == {"data": {"a": 1}, "doubled": {"a": [1, 1]}}
    assert run["event"]["data"] == {"a": 1}
    [step] = run["steps"]
    assert step["id"] == "double" and step["status"] == "completed" and step["attempts"] == 1
    assert run["created_at"].endswith("Z") and run["ended_at"] is not None


def test_start_without_a_body_and_with_an_idempotency_key(client: httpx.Client) -> None:
    r = client.post("/api/v1/functions/echo/runs")
    assert r.status_code == 201, r.text
    assert wait_run(client, r.json()["run_id"])["output"]["data"] == {}
    key = uuid.uuid4().hex
    first = client.post(
        "/api/v1/functions/echo/runs", json={"data": {"k": 1}, "idempotency_key": key}
    )
    again = client.post(
        "/api/v1/functions/echo/runs", json={"data": {"k": 2}, "idempotency_key": key}
    )
    assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
    assert first.json()["run_id"] == again.json()["run_id"]
    assert again.json()["created"] is False
    assert wait_run(client, first.json()["run_id"])["output"]["data"] == {"k": 1}


def test_start_errors(client: httpx.Client) -> None:
    assert_error(
        client.post("/api/v1/functions/no-such-fn/runs", json={"data": {}}),
        404,
        "function_not_found",
        "no-such-fn",
    )
    assert_error(
        client.post("/api/v1/functions/echo/runs", json={"data": [1]}),
        400,
        "invalid_input",
        "data must be a JSON object",
    )
    assert_error(
        client.post("/api/v1/functions/echo/runs", json={"dta": {}}), 400, "invalid_input", "dta"
    )
    assert_error(client.post("/api/v1/functions/echo/runs", json=[1]), 400, "invalid_input")
    assert_error(
        client.post("/api/v1/functions/echo/runs", json={"idempotency_key": 3}),
        400,
        "invalid_input",
        "idempotency_key",
    )
    assert_error(
        client.post("/api/v1/functions/echo/runs", json={"idempotency_key": ""}),
        400,
        "invalid_input",
        "idempotency_key",
    )
    assert_error(
        client.post("/api/v1/functions/echo/runs", content=b"{nope", headers=JSON),
        400,
        "malformed_json",
    )
    big = {"data": {"blob": "x" * (5 * 1024 * 1024)}}
    assert_error(client.post("/api/v1/functions/echo/runs", json=big), 413, "payload_too_large")


def test_failed_run_shows_its_error(client: httpx.Client) -> None:
    r = client.post("/api/v1/functions/boom/runs", json={})
    run = wait_run(client, r.json()["run_id"])
    assert run["status"] == "failed"
    assert run["error"]["message"] == "boom on purpose"
    assert run["output"] is None


def test_runs_pagination_and_filters(client: httpx.Client) -> None:
    started = []
    for i in range(5):
        r = client.post("/api/v1/functions/paged/runs", json={"data": {"i": i}})
        assert r.status_code == 201
        started.append(r.json()["run_id"])
    for run_id in started:
        wait_run(client, run_id)
    collected: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"function_id": "paged", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/api/v1/runs", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["runs"]) <= 2
        assert all("steps" not in run for run in page["runs"])
        collected += [run["id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert collected == list(reversed(started))
    r = client.get("/api/v1/runs", params={"function_id": "paged", "status": "completed"})
    assert {run["id"] for run in r.json()["runs"]} == set(started)
    r = client.get("/api/v1/runs", params={"function_id": "paged", "status": "failed"})
    assert r.json() == {"runs": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"status": "done"}, "status 'done'"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"function_id": ""}, "function_id"),
        ({"stauts": "failed"}, "unknown query parameter 'stauts'"),
    ],
)
def test_runs_list_rejects_bad_parameters(
    client: httpx.Client, params: dict[str, str], fragment: str
) -> None:
    assert_error(client.get("/api/v1/runs", params=params), 400, "invalid_input", fragment)


def test_rerun_and_replay_runs(client: httpx.Client) -> None:
    r = client.post("/api/v1/functions/echo/runs", json={"data": {"x": 1}})
    done = wait_run(client, r.json()["run_id"])
    assert done["status"] == "completed"
    r = client.post(f"/api/v1/runs/{done['id']}/replay", json={"from_step": "double"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/v1/runs/{r.json()['id']}"
    assert (r.json()["replay_of"], r.json()["replay_from_step"]) == (done["id"], "double")
    replayed = wait_run(client, r.json()["id"])
    assert replayed["output"] == done["output"] and replayed["event"] == done["event"]
    r = client.post(f"/api/v1/runs/{done['id']}/rerun", content=b"", headers=JSON)
    assert r.status_code == 201 and r.json()["rerun_of"] == done["id"], r.text
    assert wait_run(client, r.json()["id"])["output"] == done["output"]

    unknown = "/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert_error(client.post(f"{unknown}/rerun"), 404, "run_not_found")
    assert_error(client.post(f"{unknown}/replay", json={"from_step": "a"}), 404, "run_not_found")
    replay = f"/api/v1/runs/{done['id']}/replay"
    assert_error(client.post(replay, json={"from_step": "zz"}), 400, "invalid_input", "'zz'")
    assert_error(client.post(replay, json={}), 400, "invalid_input", "from_step")
    assert_error(client.post(replay, json={"from_step": 3}), 400, "invalid_input", "from_step")
    assert_error(client.post(replay, content=b"{", headers=JSON), 400, "malformed_json")
    assert_error(client.post(replay, content=b"", headers=JSON), 400, "malformed_json")
    assert_error(
        client.post(f"/api/v1/runs/{done['id']}/rerun", json=[1]), 400, "invalid_input", "rerun"
    )
    # A run that has not ended can be rerun, not replayed.
    nap = client.post("/api/v1/functions/nap/runs", json={}).json()["run_id"]
    wait_run(client, nap, ("sleeping",))
    assert_error(
        client.post(f"/api/v1/runs/{nap}/replay", json={"from_step": "nap"}),
        409,
        "run_not_ended",
        "sleeping",
    )
    again = client.post(f"/api/v1/runs/{nap}/rerun")
    assert again.status_code == 201, again.text
    assert again.json()["status"] in ("queued", "running", "sleeping"), again.text
    for run_id in (nap, again.json()["id"]):
        assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200


def test_get_and_cancel_runs(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "run_not_found")
    assert_error(client.post("/api/v1/runs/nope/cancel"), 404, "run_not_found")
    r = client.post("/api/v1/functions/nap/runs", json={})
    run_id = r.json()["run_id"]
    sleeping = wait_run(client, run_id, ("sleeping",))
    assert sleeping["steps"][0]["kind"] == "sleep" and sleeping["steps"][0]["wake_at"]
    r = client.post(f"/api/v1/runs/{run_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "cancelled"
    r = client.get("/api/v1/runs", params={"function_id": "nap", "status": "cancelled"})
    assert run_id in [run["id"] for run in r.json()["runs"]]
    # an ended run is returned unchanged
    again = client.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
