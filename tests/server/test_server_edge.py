"""The hardened edge of a real server process: the Host allow-list and the Origin check, 415 for
bodies that are not JSON, precise 400s for unusable cursors, NUL characters and out-of-range
event timestamps (on both backends), a chunked oversized body that closes the connection, and
API tokens that can never match refused at startup."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from srv_helpers import TOKEN, ServerProcess, assert_error, clean_env, start_server, wait_run

import perdure
from conftest import new_pg_schema_url
from perdure.types import MAX_EVENT_TS


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def dev(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``perdure dev --app srv_app:app``, once per backend."""
    workdir = tmp_path_factory.mktemp("edge")
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{workdir}/perdure.db"])
    else:
        urls = new_pg_schema_url()
    db_url = next(urls)
    server = start_server(workdir, ["dev", "--app", "srv_app:app"], db_url)
    yield server
    status = server.stop()
    assert status == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()
    for _ in urls:  # drop the PostgreSQL schema
        pass


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def port_of(server: ServerProcess) -> int:
    port = urlparse(server.url).port
    assert port is not None
    return port


def echo_runs(client: httpx.Client) -> set[str]:
    r = client.get("/api/v1/runs", params={"function_id": "echo", "limit": "500"})
    assert r.status_code == 200, r.text
    return {run["id"] for run in r.json()["runs"]}


def events_named(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    r = client.get("/api/v1/events", params={"name": name})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


# ---------------------------------------------------------------------- Host and Origin


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8288", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]"],
)
def test_a_foreign_host_is_refused_and_nothing_runs(client: httpx.Client, host: str) -> None:
    before = echo_runs(client)
    r = client.post("/api/v1/functions/echo/runs", json={"data": {}}, headers={"Host": host})
    assert_error(r, 400, "host_not_allowed", host, "PERDURE_ALLOWED_HOSTS")
    assert_error(client.get("/api/v1/runs", headers={"Host": host}), 400, "host_not_allowed")
    assert_error(client.get("/", headers={"Host": host}), 400, "host_not_allowed")
    assert echo_runs(client) == before


def test_loopback_names_are_served(dev: ServerProcess, client: httpx.Client) -> None:
    port = port_of(dev)
    for host in [
        f"localhost:{port}",
        "localhost",
        f"127.0.0.1:{port}",
        "127.0.0.2",
        f"[::1]:{port}",
        "app.localhost",
        "LOCALHOST.",
    ]:
        r = client.get("/health", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)


def test_a_request_without_host_is_refused(dev: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", port_of(dev)), timeout=20) as sock:
        sock.sendall(b"GET /api/v1/runs HTTP/1.0\r\n\r\n")
        response = _read_all(sock)
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b"host_not_allowed" in response and b"no Host header" in response


def test_a_cross_site_page_cannot_post(dev: ServerProcess, client: httpx.Client) -> None:
    before = echo_runs(client)
    for origin in ["http://evil.example", "null", "https://localhost.evil.example"]:
        r = client.post(
            "/api/v1/functions/echo/runs", json={"data": {}}, headers={"Origin": origin}
        )
        assert_error(r, 403, "origin_not_allowed", origin)
        # no body and no Content-Type: a "simple" request a page may send anywhere
        r = client.post("/api/v1/functions/echo/runs", headers={"Origin": origin})
        assert_error(r, 403, "origin_not_allowed")
    assert echo_runs(client) == before
    own = f"http://localhost:{port_of(dev)}"
    r = client.post("/api/v1/functions/echo/runs", json={"data": {}}, headers={"Origin": own})
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------- Content-Type


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"name": "NAME"}'),
        ("text/plain;charset=UTF-8", b'{"name": "NAME"}'),
        ("application/x-www-form-urlencoded", b'{"name": "NAME"}'),
        ("multipart/form-data; boundary=x", b'--x\r\n\r\n{"name": "NAME"}\r\n--x--'),
        (None, b'{"name": "NAME"}'),
        ("application/jsonx", b'{"name": "NAME"}'),
    ],
)
def test_a_body_that_is_not_declared_json_is_415(
    client: httpx.Client, content_type: str | None, body: bytes
) -> None:
    name = f"t.{uuid.uuid4().hex[:10]}"
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post("/api/v1/events", content=body.replace(b"NAME", name.encode()), headers=headers)
    assert_error(r, 415, "unsupported_media_type", "application/json")
    assert events_named(client, name) == []


def test_form_posts_cannot_start_or_cancel(client: httpx.Client) -> None:
    before = echo_runs(client)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = client.post("/api/v1/functions/echo/runs", content=b"", headers=form)
    assert_error(r, 415, "unsupported_media_type")
    r = client.post("/api/v1/functions/echo/runs", content=b"data=1", headers=form)
    assert_error(r, 415, "unsupported_media_type")
    assert echo_runs(client) == before
    r = client.post("/api/v1/functions/nap/runs", json={})
    run_id = r.json()["run_id"]
    wait_run(client, run_id, ("sleeping",))
    r = client.post(f"/api/v1/runs/{run_id}/cancel", content=b"", headers=form)
    assert_error(r, 415, "unsupported_media_type")
    assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "sleeping"
    assert client.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"


def test_json_with_a_charset_is_accepted(client: httpx.Client) -> None:
    name = f"t.{uuid.uuid4().hex[:10]}"
    r = client.post(
        "/api/v1/events",
        content=f'{{"name": "{name}"}}'.encode(),
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    assert len(events_named(client, name)) == 1


# ---------------------------------------------------------------------- unvalidated input


@pytest.mark.parametrize(
    "cursor",
    [
        "²",
        "9" * 5000,
        "9223372036854775808",
        "9223372036854775807" + "0",
        "",
        "0",
        "-1",
        "1.5",
        " 1",
    ],
)
def test_unusable_events_cursors_are_400(client: httpx.Client, cursor: str) -> None:
    r = client.get("/api/v1/events", params={"cursor": cursor})
    assert_error(r, 400, "invalid_input", "cursor", "next_cursor")


@pytest.mark.parametrize("cursor", ["", "u" * 26, "\u017f" * 26, "0" * 25 + "\x00", "0" * 5000])
def test_unusable_runs_cursors_are_400(client: httpx.Client, cursor: str) -> None:
    assert_error(
        client.get("/api/v1/runs", params={"cursor": cursor}), 400, "invalid_input", "cursor"
    )


def test_the_largest_events_cursor_is_a_page(client: httpx.Client) -> None:
    r = client.get("/api/v1/events", params={"cursor": "9" * 18, "limit": "1"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "statuses"),
    [
        ("GET", "/api/v1/runs/%00", None, None, (400, 404)),
        ("GET", "/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FA%00", None, None, (400, 404)),
        ("POST", "/api/v1/runs/ab%00cd/cancel", None, None, (400, 404)),
        ("POST", "/api/v1/functions/ec%00ho/runs", None, {}, (400, 404)),
        ("GET", "/api/v1/runs", {"function_id": "echo\x00"}, None, (400,)),
        ("GET", "/api/v1/events", {"name": "a\x00b"}, None, (400,)),
        ("POST", "/api/v1/functions/echo/runs", None, {"idempotency_key": "k\x00"}, (400,)),
        ("POST", "/api/v1/events", None, {"name": "x.y", "id": "e\x00"}, (400,)),
        ("POST", "/api/v1/events", None, [{"name": "x.y"}, {"name": "x.y", "id": "\x00"}], (400,)),
    ],
)
def test_nul_characters_are_400_or_404(
    client: httpx.Client,
    method: str,
    path: str,
    params: dict[str, str] | None,
    body: Any,
    statuses: tuple[int, ...],
) -> None:
    r = client.request(method, path, params=params, json=body)
    assert r.status_code in statuses, r.text
    assert_error(r, r.status_code, r.json()["error"]["code"])
    assert r.json()["error"]["code"] in ("invalid_input", "run_not_found", "function_not_found")


@pytest.mark.parametrize("ts", [2**63, 2**63 - 1, MAX_EVENT_TS + 1, -1, 1.5, True, "1"])
def test_an_event_ts_out_of_range_is_400(client: httpx.Client, ts: Any) -> None:
    name = f"t.{uuid.uuid4().hex[:10]}"
    r = client.post("/api/v1/events", json=[{"name": name}, {"name": name, "ts": ts}])
    assert_error(r, 400, "invalid_input", "events[1]", "ts")
    assert events_named(client, name) == []


def test_the_latest_event_ts_starts_a_run_that_completes(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/events", json={"name": "test/ping", "data": {"n": 9}, "ts": MAX_EVENT_TS}
    )
    assert r.status_code == 200, r.text
    [run_id] = r.json()["events"][0]["run_ids"]
    run = wait_run(client, run_id)
    assert run["status"] == "completed", run
    assert run["event"]["ts"] == MAX_EVENT_TS
    r = client.post("/api/v1/events", json={"name": "test/ping", "ts": 1000.0})  # an integer
    assert r.status_code == 200, r.text


def test_the_sdk_refuses_the_same_ts(sqlite_url: str) -> None:
    with pytest.raises(perdure.InvalidInputError, match="ts"):
        perdure.Event(name="x.y", ts=2**63)
    with pytest.raises(perdure.InvalidInputError, match="NUL"):
        perdure.Event(name="x.y", id="a\x00")
    assert perdure.Event(name="x.y", ts=MAX_EVENT_TS).time.year == 9999


# ---------------------------------------------------------------------- connections


def _read_all(sock: socket.socket, deadline: float = 30.0) -> bytes:
    """Everything until the server closes the connection (a reset counts as closed)."""
    sock.settimeout(deadline)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_chunked_body_over_the_limit_closes_the_connection(dev: ServerProcess) -> None:
    total = 512 * 1024 * 1024  # what the client would send if the server kept reading
    sent = 0
    failed: list[BaseException] = []
    sock = socket.create_connection(("127.0.0.1", port_of(dev)), timeout=60)

    def send() -> None:
        nonlocal sent
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        try:
            sock.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            while sent < total:
                sock.sendall(chunk)
                sent += 0x10000
        except OSError as exc:  # the server closed the connection: expected
            failed.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = _read_all(sock, 60)
        sender.join(60)
    finally:
        sock.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), response[:300]
    assert b"connection: close" in head.lower()
    assert b"payload_too_large" in body
    assert not sender.is_alive()
    assert failed, "the server read the whole stream"
    assert sent < 200 * 1024 * 1024, sent


# ---------------------------------------------------------------------- configuration


def test_allowed_hosts_replace_the_default(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        ["server", "--no-auth"],
        f"sqlite:///{tmp_path}/db.sqlite",
        env=clean_env(PERDURE_ALLOWED_HOSTS="api.example.com, *.internal.example, 127.0.0.1"),
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for host in [
                "api.example.com",
                "API.example.com:443",
                "a.internal.example",
                "127.0.0.1",
            ]:
                assert c.get("/api/v1/functions", headers={"Host": host}).status_code == 200, host
            for host in ["localhost", "example.com", "internal.example"]:
                r = c.get("/api/v1/functions", headers={"Host": host})
                assert_error(r, 400, "host_not_allowed", "api.example.com")
    finally:
        assert server.stop() == 0, server.stderr()


def test_a_token_server_serves_any_host_and_still_wants_json(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        ["server"],
        f"sqlite:///{tmp_path}/db.sqlite",
        env=clean_env(PERDURE_API_TOKEN=TOKEN),
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=auth) as c:
            r = c.get("/api/v1/functions", headers={"Host": "perdure.example.com"})
            assert r.status_code == 200, r.text
            r = c.post(
                "/api/v1/events", content=b'{"name": "a.b"}', headers={"Content-Type": "text/plain"}
            )
            assert_error(r, 415, "unsupported_media_type")
    finally:
        assert server.stop() == 0, server.stderr()


def test_a_malformed_allow_list_is_refused_at_startup(tmp_path: Path) -> None:
    r = _run_cli(["dev", "--app", "srv_app:app"], tmp_path, PERDURE_ALLOWED_HOSTS="http://x/")
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and "allowed host 'http://x/'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("token", ["tökén-0123456789", "with space", "tab\there"])
def test_a_token_that_could_never_match_is_refused_at_startup(tmp_path: Path, token: str) -> None:
    r = _run_cli(["server"], tmp_path, PERDURE_API_TOKEN=token)
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and "printable ASCII" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert token not in r.stderr  # a secret is not echoed


def _run_cli(args: list[str], workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "perdure.cli",
            *args,
            "--port",
            "0",
            "--database-url",
            f"sqlite:///{workdir}/db.sqlite",
        ],
        env=clean_env(**env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
