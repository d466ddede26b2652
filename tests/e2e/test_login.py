"""The dashboard behind keys, in headless chromium against a real ``perdure server``: the
redirect to the login page, a wrong key, logging in (the session cookie and its CSRF token
carry a cancel through the browser), the audit on the run, a read key's page without actions,
another environment's key, logging out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

pytest_plugins = ["e2e_harness"]  # the browser fixture (it skips or fails without chromium)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))
from srv_helpers import ServerProcess, clean_env, start_server  # noqa: E402

DEADLINE_MS = 20_000


@dataclass
class Secured:
    server: ServerProcess
    admin: str
    read: str
    staging: str


def _key(db_url: str, name: str, scope: str, env: str = "default") -> str:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "perdure.cli",
            "--env",
            env,
            "keys",
            "create",
            name,
            "--scope",
            scope,
            "--json",
            "--database-url",
            db_url,
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    token: str = json.loads(r.stdout)["token"]
    return token


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Secured]:
    workdir = tmp_path_factory.mktemp("login")
    db_url = f"sqlite:///{workdir}/perdure.db"
    keys = (
        _key(db_url, "ops", "admin"),
        _key(db_url, "viewer", "read"),
        _key(db_url, "stage", "admin", "staging"),
    )
    env = clean_env(PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    server = start_server(workdir, ["server", "--app", "shop_app:app"], db_url, env)
    yield Secured(server, *keys)
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.fixture
def context(browser: Any, secured: Secured) -> Iterator[Any]:
    ctx = browser.new_context(base_url=secured.server.url, viewport={"width": 1360, "height": 900})
    ctx.set_default_timeout(DEADLINE_MS)
    yield ctx
    ctx.close()


def a_run(secured: Secured, fn: str = "reminder") -> str:
    with httpx.Client(base_url=secured.server.url, timeout=30) as c:
        r = c.post(
            f"/api/v1/functions/{fn}/runs",
            json={"data": {"who": "login-test"}},
            headers={"Authorization": f"Bearer {secured.admin}"},
        )
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


def log_in(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("#login-submit")


def test_log_in_act_with_csrf_see_the_audit_and_log_out(context: Any, secured: Secured) -> None:
    run_id = a_run(secured)  # queued: this server has no worker
    page = context.new_page()
    page.goto(f"/runs/{run_id}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    log_in(page, "pdk_default_" + "0" * 48)
    expect(page.locator("#login-error")).to_contain_text("not valid")
    log_in(page, secured.admin)
    expect(page).to_have_url(re.compile(f"/runs/{run_id}$"))  # back where it was going
    expect(page.locator("[data-env]")).to_have_text("default")
    expect(page.locator("#env")).to_contain_text("ops")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["perdure_session"]["httpOnly"] is True
    page.click("#cancel")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator(".badge").first).to_contain_text("cancelled")
    expect(page.locator("#audit li[data-action=cancel]")).to_contain_text("key:")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs"))


def test_a_read_key_sees_no_actions(context: Any, secured: Secured) -> None:
    run_id = a_run(secured)
    page = context.new_page()
    page.goto(f"/login?next=/runs/{run_id}")
    log_in(page, secured.read)
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#cancel")).to_have_count(0)
    expect(page.locator("#rerun")).to_have_count(0)


def test_a_key_of_another_environment_sees_its_own(context: Any, secured: Secured) -> None:
    run_id = a_run(secured)
    page = context.new_page()
    page.goto("/login")
    log_in(page, secured.staging)
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect(page.locator("[data-env]")).to_have_text("staging")
    expect(page.locator(f'tr[data-run="{run_id}"]')).to_have_count(0)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#main")).to_contain_text("no run")


def test_the_login_page_takes_a_screenshot(context: Any, secured: Secured) -> None:
    page = context.new_page()
    page.goto("/login")
    expect(page.locator("#token")).to_be_visible()
    page.screenshot(path=str(Path(HERE).parents[1] / "docs" / "screenshots" / "login.png"))
