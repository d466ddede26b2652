"""``perdure server``: no worker, bearer-token authentication, several servers on one database."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from srv_helpers import TOKEN, ServerProcess, assert_error, clean_env, start_server, wait_run


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("server")
    server = start_server(
        workdir,
        ["server", "--app", "srv_app:app"],
        f"sqlite:///{workdir}/perdure.db",
        env=clean_env(PERDURE_API_TOKEN=TOKEN),
    )
    yield server
    assert server.stop(signal.SIGINT) == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "needs an API token"),
        ({"Authorization": "Bearer wrong-token"}, "not valid"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "not valid"),
        ({"Authorization": f"Basic {TOKEN}"}, "Bearer <token>"),
        ({"Authorization": "Bearer"}, "Bearer <token>"),
    ],
)
def test_api_routes_need_the_token(
    secured: ServerProcess, headers: dict[str, str], fragment: str
) -> None:
    with httpx.Client(base_url=secured.url, headers=headers, timeout=30) as c:
        for method, path in [
            ("GET", "/api/v1/runs"),
            ("GET", "/api/v1/functions"),
            ("POST", "/api/v1/events"),
            ("POST", "/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/rerun"),
            ("POST", "/api/v1/runs/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay"),
            ("GET", "/api/v1/does-not-exist"),
        ]:
            r = c.request(method, path, json={"name": "x"} if method == "POST" else None)
            assert_error(r, 401, "unauthorized", fragment)
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_only_health_stays_open(secured: ServerProcess) -> None:
    r = httpx.get(f"{secured.url}/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert_error(httpx.get(f"{secured.url}/openapi.json"), 401, "unauthorized")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    doc = httpx.get(f"{secured.url}/openapi.json", headers=auth).json()
    assert doc["security"] == [{"bearer": []}]
    page = httpx.get(f"{secured.url}/")  # a page: to the login page
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_with_the_token_and_no_worker_runs_stay_queued(secured: ServerProcess) -> None:
    with httpx.Client(
        base_url=secured.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as c:
        functions = {f["id"] for f in c.get("/api/v1/functions").json()["functions"]}
        assert "echo" in functions  # --app registers its functions
        r = c.post("/api/v1/functions/echo/runs", json={"data": {"a": 1}})
        assert r.status_code == 201, r.text
        run_id = r.json()["run_id"]
        assert c.get(f"/api/v1/runs/{run_id}").json()["status"] == "queued"
        # a worker elsewhere on the same database executes it
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perdure.cli",
                "worker",
                "srv_app:app",
                "--database-url",
                secured.db_url,
                "--log-level",
                "warning",
            ],
            env=clean_env(),
            cwd=Path(secured.out).parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            run = wait_run(c, run_id)
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=20)
        assert run["status"] == "completed" and run["output"]["data"] == {"a": 1}
        assert worker.returncode == 0, err.decode()


def test_a_server_without_a_token_needs_keys(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["server"], f"sqlite:///{tmp_path}/db.sqlite")
    try:
        assert "keys required" in server.out.read_text()
        assert "perdure keys create" in server.out.read_text()  # no key yet: the hint
        assert_error(httpx.get(f"{server.url}/api/v1/functions"), 401, "unauthorized")
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        assert server.stop() == 0, server.stderr()


def test_server_without_auth_when_asked(tmp_path: Path) -> None:
    server = start_server(tmp_path, ["server", "--no-auth"], f"sqlite:///{tmp_path}/db.sqlite")
    try:
        r = httpx.get(f"{server.url}/api/v1/functions")
        assert r.status_code == 200 and r.json() == {"functions": []}
        assert "NO authentication" in server.out.read_text()
    finally:
        assert server.stop() == 0, server.stderr()


def test_the_api_token_cannot_open_a_dashboard_session(secured: ServerProcess) -> None:
    r = httpx.post(f"{secured.url}/auth/login", json={"token": TOKEN}, timeout=30)
    assert_error(r, 401, "unauthorized", "perdure keys create")
    assert "set-cookie" not in r.headers
