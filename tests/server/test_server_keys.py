"""Keys with scopes, environments, dashboard sessions with CSRF, and the audit trail, end to
end: keys made by ``perdure keys create``, a real ``perdure server`` (no ``--api-token``),
requests over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from srv_helpers import ServerProcess, assert_error, clean_env, start_server

import perdure
from conftest import new_pg_schema_url
from perdure.server.dashboard.routes import PAGES

DASHBOARD_PAGES = ["/"] + [
    re.sub(r"\{[^}]+\}", "01ARZ3NDEKTSV4RRFFQ69G5FAV", path) for path in PAGES if path != "/login"
]
"""Every page of the dashboard (its own list: a page added there is checked here)."""


def cli(db_url: str, *args: str, env: str | None = None) -> subprocess.CompletedProcess[str]:
    pre = ["--env", env] if env else []
    return subprocess.run(
        [sys.executable, "-m", "perdure.cli", *pre, *args, "--database-url", db_url],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def make_key(db_url: str, name: str, *scopes: str, env: str | None = None) -> dict[str, Any]:
    args = ["keys", "create", name, *[a for s in scopes for a in ("--scope", s)], "--json"]
    r = cli(db_url, *args, env=env)
    assert r.returncode == 0, r.stderr
    made: dict[str, Any] = json.loads(r.stdout)
    return made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    server: ServerProcess
    db_url: str
    admin: str
    admin_id: str
    read: str
    ingest: str
    worker: str
    staging: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = bearer(token) if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)


def world_on(workdir: Path, db_url: str) -> Iterator[World]:
    admin = make_key(db_url, "ops", "admin")
    world = World(
        server=None,  # type: ignore[arg-type]
        db_url=db_url,
        admin=admin["token"],
        admin_id=admin["key"]["id"],
        read=make_key(db_url, "viewer", "read")["token"],
        ingest=make_key(db_url, "events", "ingest")["token"],
        worker=make_key(db_url, "service", "worker")["token"],
        staging=make_key(db_url, "staging-ops", "admin", env="staging")["token"],
    )
    world.server = start_server(workdir, ["server", "--app", "srv_app:app"], db_url)
    try:
        yield world
    finally:
        assert world.server.stop(signal.SIGINT) == 0, world.server.stderr()
        assert "Traceback" not in world.server.stderr()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("keys")
    yield from world_on(workdir, f"sqlite:///{workdir}/perdure.db")


def test_tokens_are_shown_once_and_stored_hashed(world: World) -> None:
    assert re.fullmatch(r"pdk_default_[0-9a-f]{48}", world.admin)
    assert re.fullmatch(r"pdk_staging_[0-9a-f]{48}", world.staging)
    listed = cli(world.db_url, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)["keys"]
    assert {k["name"] for k in keys} == {"ops", "viewer", "events", "service"}  # not staging's
    assert world.admin not in listed.stdout and world.admin[-40:] not in listed.stdout
    assert all(k["created_by"].startswith("cli:") for k in keys)
    db = Path(world.db_url.removeprefix("sqlite:///")).read_bytes()
    assert world.admin.encode() not in db  # only its hash is in the database
    table = cli(world.db_url, "keys", "list")
    assert table.returncode == 0 and "viewer" in table.stdout and "read" in table.stdout


@pytest.mark.parametrize(
    ("scope", "method", "path", "body", "allowed"),
    [
        ("read", "GET", "/api/v1/runs", None, True),
        ("read", "GET", "/api/v1/functions", None, True),
        ("read", "GET", "/metrics", None, True),
        ("read", "POST", "/api/v1/events", {"name": "test/ping"}, False),
        ("read", "POST", "/api/v1/functions/echo/runs", {}, False),
        ("read", "GET", "/api/v1/keys", None, False),
        ("ingest", "POST", "/api/v1/events", {"name": "test/ping"}, True),
        ("ingest", "GET", "/api/v1/runs", None, False),
        ("ingest", "POST", "/api/v1/functions/echo/runs", {}, False),
        ("worker", "POST", "/api/v1/functions/echo/runs", {}, True),
        ("worker", "POST", "/api/v1/events", {"name": "test/ping"}, True),
        ("worker", "GET", "/api/v1/runs", None, True),
        ("worker", "POST", "/api/v1/schedules", {}, False),
        ("worker", "GET", "/api/v1/keys", None, False),
        ("admin", "GET", "/api/v1/keys", None, True),
    ],
)
def test_scopes(world: World, scope: str, method: str, path: str, body: Any, allowed: bool) -> None:
    token = {"read": world.read, "ingest": world.ingest, "worker": world.worker}.get(
        scope, world.admin
    )
    with world.client(token) as c:
        r = c.request(method, path, json=body)
    if allowed:
        assert r.status_code in (200, 201), r.text
    else:
        assert_error(r, 403, "forbidden", f"needs the {_need(method, path)!r} scope")


def _need(method: str, path: str) -> str:
    if path.startswith("/api/v1/keys"):
        return "admin"
    if method == "GET":
        return "read"
    if path == "/api/v1/events":
        return "ingest"
    return "worker" if path.endswith("/runs") else "admin"


def test_cancel_needs_admin_and_is_audited_on_the_run(world: World) -> None:
    with world.client(world.worker) as w, world.client(world.admin) as a:
        run_id = w.post("/api/v1/functions/nap/runs", json={}).json()["run_id"]
        assert_error(w.post(f"/api/v1/runs/{run_id}/cancel"), 403, "forbidden")
        r = a.post(f"/api/v1/runs/{run_id}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        rerun = a.post(f"/api/v1/runs/{run_id}/rerun")
        assert rerun.status_code == 201, rerun.text
        run = a.get(f"/api/v1/runs/{run_id}").json()
        audit = [(e["actor"], e["action"], e["target"]) for e in run["audit"]]
        assert audit == [
            (f"key:{world.admin_id}", "rerun", rerun.json()["id"]),
            (f"key:{world.admin_id}", "cancel", None),
        ]
        new = a.get(f"/api/v1/runs/{rerun.json()['id']}").json()
        assert [(e["action"], e["target"]) for e in new["audit"]] == [("rerun_of", run_id)]
        trail = a.get("/api/v1/audit", params={"run_id": run_id, "limit": 1}).json()
        assert [e["action"] for e in trail["entries"]] == ["rerun"] and trail["next_cursor"]
        older = a.get(
            "/api/v1/audit", params={"run_id": run_id, "cursor": trail["next_cursor"]}
        ).json()
        assert [e["action"] for e in older["entries"]] == ["cancel"]
        assert a.post(f"/api/v1/runs/{new['id']}/cancel").status_code == 200
        # Pausing and resuming a function is audited too.
        assert_error(w.post("/api/v1/functions/paged/pause"), 403, "forbidden")
        assert a.post("/api/v1/functions/paged/pause").json()["paused"] is True
        assert a.post("/api/v1/functions/paged/resume").json()["paused"] is False
        entries = a.get("/api/v1/audit", params={"limit": 2}).json()["entries"]
        assert [(e["action"], e["target"], e["actor"]) for e in entries] == [
            ("resume", "paged", f"key:{world.admin_id}"),
            ("pause", "paged", f"key:{world.admin_id}"),
        ]


def test_a_key_of_another_environment_gets_404(world: World) -> None:
    with world.client(world.admin) as a, world.client(world.staging) as s:
        run_id = a.post("/api/v1/functions/echo/runs", json={"data": {"x": 1}}).json()["run_id"]
        assert a.get(f"/api/v1/runs/{run_id}").status_code == 200  # queued: no worker here
        assert_error(s.get(f"/api/v1/runs/{run_id}"), 404, "run_not_found")
        assert_error(s.post(f"/api/v1/runs/{run_id}/cancel"), 404, "run_not_found")
        assert_error(s.post(f"/api/v1/runs/{run_id}/rerun"), 404, "run_not_found")
        assert run_id not in {r["id"] for r in s.get("/api/v1/runs").json()["runs"]}
        assert s.get("/api/v1/functions").json()["functions"] == []
        assert_error(s.post("/api/v1/functions/echo/runs", json={}), 404, "function_not_found")
        # staging's own keys: not the default environment's
        names = {k["name"] for k in s.get("/api/v1/keys").json()["keys"]}
        assert names == {"staging-ops"}
    # A run in staging, started by an app of that environment, is seen by staging's key only.
    staging_app = perdure.App("staging-app", world.db_url, env="staging")

    @staging_app.function()
    async def hello(ctx: perdure.Context) -> str:
        return "hi"

    async def start() -> str:
        async with staging_app:
            await staging_app.register()
            return (await staging_app.start(hello, {})).run_id

    staged = asyncio.run(start())
    with world.client(world.admin) as a, world.client(world.staging) as s:
        assert s.get(f"/api/v1/runs/{staged}").json()["status"] == "queued"
        assert_error(a.get(f"/api/v1/runs/{staged}"), 404, "run_not_found")
        listed = cli(world.db_url, "runs", "list", "--json", env="staging")
        assert listed.returncode == 0 and staged in listed.stdout, listed.stderr
        default = cli(world.db_url, "runs", "list", "--json")
        assert staged not in default.stdout


def test_dashboard_session_with_csrf_and_logout(world: World) -> None:
    with world.client() as c:
        assert_error(
            c.post("/auth/login", json={"token": "pdk_default_" + "0" * 48}), 401, "unauthorized"
        )
        assert_error(c.post("/auth/login", json={"tok": 1}), 400, "invalid_input")
        r = c.post("/auth/login", json={"token": world.admin})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "perdure_session=pds_default_" in cookie and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        session = c.get("/auth/session").json()
        assert session["auth"] is True and session["env"] == "default"
        assert session["key"]["name"] == "ops" and session["scopes"] == ["admin"]
        csrf = session["csrf"]
        assert csrf and csrf == r.json()["csrf"]
        page = c.get("/runs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        run_id = c.post(
            "/api/v1/functions/nap/runs", json={}, headers={"X-CSRF-Token": csrf}
        ).json()["run_id"]
        assert_error(c.post(f"/api/v1/runs/{run_id}/cancel"), 403, "csrf_failed")
        bad = c.post(f"/api/v1/runs/{run_id}/cancel", headers={"X-CSRF-Token": csrf + "x"})
        assert_error(bad, 403, "csrf_failed")
        ok = c.post(f"/api/v1/runs/{run_id}/cancel", headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
        assert c.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert_error(c.get("/api/v1/runs"), 401, "unauthorized")
        gone = c.get("/runs")
        assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/runs"


def test_a_read_session_cannot_change_anything(world: World) -> None:
    with world.client() as c:
        csrf = c.post("/auth/login", json={"token": world.read}).json()["csrf"]
        assert c.get("/api/v1/runs").status_code == 200
        r = c.post("/api/v1/functions/echo/runs", json={}, headers={"X-CSRF-Token": csrf})
        assert_error(r, 403, "forbidden")


def test_keys_api_create_use_and_revoke(world: World) -> None:
    with world.client(world.admin) as a:
        r = a.post("/api/v1/keys", json={"name": "temp", "scopes": ["read"], "expires_in": 3600})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["key"]["expires_at"] and made["key"]["created_by"] == f"key:{world.admin_id}"
        for bad in (
            {"name": "x", "scopes": ["root"]},
            {"name": "x", "scopes": []},
            {"name": "", "scopes": ["read"]},
            {"name": "x", "scopes": ["read"], "expires_in": -1},
            {"name": "x", "scopes": ["read"], "extra": 1},
            {"name": "x", "scopes": "read"},
        ):
            assert_error(a.post("/api/v1/keys", json=bad), 400, "invalid_input")
        assert_error(a.delete("/api/v1/keys/key_nope"), 404, "key_not_found")
        listed = a.get("/api/v1/keys").json()["keys"]
        assert made["token"] not in json.dumps(listed)
        with world.client(made["token"]) as t:
            assert t.get("/api/v1/runs").status_code == 200
            revoked = a.delete(f"/api/v1/keys/{made['key']['id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"]
            assert_error(t.get("/api/v1/runs"), 401, "unauthorized", "not valid")
        actions = [e["action"] for e in a.get("/api/v1/audit").json()["entries"]]
        assert actions[:2] == ["key.revoke", "key.create"]


def test_a_key_revoked_from_the_cli_stops_working(world: World) -> None:
    made = make_key(world.db_url, "short-lived", "read")
    with world.client(made["token"]) as t:
        assert t.get("/api/v1/runs").status_code == 200
        r = cli(world.db_url, "keys", "revoke", made["key"]["id"])
        assert r.returncode == 0 and "revoked" in r.stdout, r.stderr
        deadline = time.monotonic() + 30  # other processes: within the cache's 5 s
        while t.get("/api/v1/runs").status_code != 401:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.1)
    r = cli(world.db_url, "keys", "revoke", "key_nope")
    assert r.returncode == 1 and "no key with id 'key_nope'" in r.stderr


def test_every_route_and_page_refuses_a_request_without_a_key(world: World) -> None:
    with world.client(world.admin) as a:
        spec = a.get("/openapi.json").json()
    checked = 0
    with world.client() as c:
        for path, ops in spec["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "01ARZ3NDEKTSV4RRFFQ69G5FAV", path)
            for method in ops:
                if method not in ("get", "post", "put", "delete", "patch"):
                    continue
                body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
                r = c.request(method.upper(), concrete, json=body)
                if path == "/health":
                    assert r.status_code == 200
                    continue
                if path == "/auth/login":  # how a browser gets a session: open, takes a key
                    assert_error(r, 400, "invalid_input", "token")
                    continue
                assert_error(r, 401, "unauthorized")
                checked += 1
        for page in DASHBOARD_PAGES:
            r = c.get(page)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), page
        assert c.get("/login").status_code == 200
        assert_error(c.get("/openapi.json"), 401, "unauthorized")
        assert_error(c.get("/metrics"), 401, "unauthorized")
    assert checked >= 25, checked  # the whole API, not a handful


@pytest.mark.postgres
def test_environments_on_postgresql(tmp_path: Path) -> None:
    for db_url in new_pg_schema_url():
        for world in world_on(tmp_path, db_url):
            test_a_key_of_another_environment_gets_404(world)
