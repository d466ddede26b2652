"""The events, functions, schedules, workers and apps pages in headless chromium, over a real
``perdure dev`` process (the app of tests/server/srv_dash_app.py, and a ``-u`` app URL that
nobody serves); each test saves its page's screenshot into docs/screenshots/."""

from __future__ import annotations

import re
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER_TESTS = Path(__file__).resolve().parents[1] / "server"
sys.path.insert(0, str(SERVER_TESTS))
from srv_helpers import ServerProcess, start_server, wait_run  # noqa: E402

pytest_plugins = ["e2e_harness"]  # the fixtures: browser, page (on the server below)

TIMEOUT = 30_000  # ms: Playwright's expectations wait for the thing itself up to this


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("e2e-dash2")
    dead = f"http://127.0.0.1:{_free_port()}/api/inngest"
    server = start_server(
        workdir,
        ["dev", "--app", "srv_dash_app:app", "--no-discovery", "--no-poll", "-u", dead],
        f"sqlite:///{workdir}/perdure.db",
    )
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr()


@pytest.fixture(scope="module")
def server(dev: ServerProcess) -> ServerProcess:
    """The harness's ``page`` opens on this module's server."""
    return dev


@pytest.fixture
def http(dev: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


def test_events_list_send_and_detail(
    shot: Any, page: Any, dev: ServerProcess, http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    order = uuid.uuid4().hex[:8]
    r = http.post(
        "/api/v1/events",
        json={"name": "dash/order.placed", "data": {"order": order}, "id": f"p-{order}"},
    )
    [run_id] = r.json()["events"][0]["run_ids"]
    wait_run(http, run_id, ("waiting",))
    page.goto(f"{dev.url}/events")
    expect(page.locator(f"tr[data-event='p-{order}']")).to_be_visible(timeout=TIMEOUT)
    # the send form: the shipment resumes the waiting run
    page.fill("#send-name", "dash/order.shipped")
    page.fill("#send-data", f'{{"order": "{order}", "carrier": "dhl"}}')
    page.click("#send-event button[type=submit]")
    sent = page.locator("#send-result a[data-sent]")
    expect(sent).to_be_visible(timeout=TIMEOUT)
    shipped_id = sent.get_attribute("data-sent")
    assert shipped_id
    expect(page.locator(f"tr[data-event='{shipped_id}']")).to_be_visible(timeout=TIMEOUT)
    wait_run(http, run_id)
    # the name filter keeps only that name
    page.fill("#event-name", "dash/order.placed")
    page.click("#event-filter button[type=submit]")
    expect(page).to_have_url(re.compile(r"name=dash%2Forder\.placed"), timeout=TIMEOUT)
    expect(page.locator(f"tr[data-event='{shipped_id}']")).to_have_count(0, timeout=TIMEOUT)
    expect(page.locator(f"tr[data-event='p-{order}']")).to_be_visible(timeout=TIMEOUT)
    shot(page, "events")
    # the shipment's detail: it resumed the run, at its wait step
    page.goto(f"{dev.url}/events/{shipped_id}")
    resumed = page.locator(f"#resumed tr[data-run='{run_id}']")
    expect(resumed).to_be_visible(timeout=TIMEOUT)
    expect(resumed).to_contain_text("shipped")
    expect(page.locator("pre.payload")).to_contain_text('"carrier": "dhl"')
    shot(page, "event")
    page.goto(f"{dev.url}/events/p-{order}")
    started = page.locator(f"#started tr[data-run='{run_id}'] a[href='/runs/{run_id}']")
    expect(started).to_be_visible(timeout=TIMEOUT)
    started.click()
    expect(page).to_have_url(f"{dev.url}/runs/{run_id}", timeout=TIMEOUT)


def test_events_pages_with_a_cursor(page: Any, dev: ServerProcess, http: httpx.Client) -> None:
    from playwright.sync_api import expect

    name = f"dash/page.{uuid.uuid4().hex[:6]}"
    ids = [f"pg-{i}-{uuid.uuid4().hex[:6]}" for i in range(52)]
    r = http.post("/api/v1/events", json=[{"name": name, "id": i} for i in ids])
    assert r.status_code == 200, r.text
    page.goto(f"{dev.url}/events?name={name}")
    expect(page.locator("#events-body tr")).to_have_count(50, timeout=TIMEOUT)
    expect(page.locator(f"tr[data-event='{ids[0]}']")).to_have_count(0)
    page.click("#next-page")
    expect(page.locator("#events-body tr")).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator(f"tr[data-event='{ids[0]}']")).to_be_visible()


def test_functions_stats_start_and_pause(
    shot: Any, page: Any, dev: ServerProcess, http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    for data in ({"seconds": 0}, {"seconds": 0.2}, {"fail": True}):
        run_id = http.post("/api/v1/functions/timed/runs", json={"data": data}).json()["run_id"]
        wait_run(http, run_id)
    page.goto(f"{dev.url}/functions")
    expect(page.locator("tr[data-function='timed']")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("tr[data-function='ship']")).to_contain_text("dash/order.placed")
    shot(page, "functions")
    page.click("tr[data-function='timed'] a")
    expect(page.locator("#stats [data-stat='success_rate']")).not_to_have_text("—", timeout=TIMEOUT)
    stats = http.get("/api/v1/functions/timed/stats").json()
    rate = f"{stats['success_rate'] * 100:.1f} %"
    expect(page.locator("#stats [data-stat='success_rate']")).to_have_text(rate)
    expect(page.locator("#stats [data-stat='p99']")).not_to_have_text("—")
    shot(page, "function")
    # pause, then resume: the button calls the API and the page shows the function's state
    page.click("#pause")
    expect(page.locator("#state")).to_have_text("paused", timeout=TIMEOUT)
    assert http.get("/api/v1/functions/timed").json()["paused"] is True
    page.click("#resume")
    expect(page.locator("#state")).to_have_text("active", timeout=TIMEOUT)
    assert http.get("/api/v1/functions/timed").json()["paused"] is False
    # start a run with JSON input: the browser goes to the run
    page.fill("#run-data", '{"seconds": 0, "tag": "from-the-page"}')
    page.click("#start-run button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/[0-9A-Z]{26}$"), timeout=TIMEOUT)
    run_id = page.url.rsplit("/", 1)[1]
    assert wait_run(http, run_id)["event"]["data"] == {"seconds": 0, "tag": "from-the-page"}
    # bad JSON is refused in the page, nothing is started
    page.goto(f"{dev.url}/functions/timed")
    page.fill("#run-data", "{not json")
    page.click("#start-run button[type=submit]")
    expect(page.locator("#start-run .error-box")).to_contain_text("not JSON", timeout=TIMEOUT)


def test_schedules_pause_resume_trigger(
    shot: Any, page: Any, dev: ServerProcess, http: httpx.Client
) -> None:
    from playwright.sync_api import expect

    sid = f"nightly-{uuid.uuid4().hex[:6]}"
    r = http.post(
        "/api/v1/schedules", json={"id": sid, "function_id": "timed", "cron": "0 3 * * *"}
    )
    assert r.status_code == 201, r.text
    page.goto(f"{dev.url}/schedules")
    row = page.locator(f"tr[data-schedule='{sid}']")
    expect(row).to_be_visible(timeout=TIMEOUT)
    row.locator("[data-action=pause]").click()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "paused", timeout=TIMEOUT)
    assert http.get(f"/api/v1/schedules/{sid}").json()["paused"] is True
    row.locator("[data-action=resume]").click()
    expect(row.locator("[data-state]")).to_have_attribute("data-state", "active", timeout=TIMEOUT)
    row.locator("[data-action=trigger]").click()
    expect(row.locator("a.mono")).to_be_visible(timeout=TIMEOUT)
    last = http.get(f"/api/v1/schedules/{sid}").json()
    assert last["runs"] == 1 and last["last_run_id"]
    shot(page, "schedules")


def test_workers_page_lists_the_dev_worker(shot: Any, page: Any, dev: ServerProcess) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.url}/workers")
    row = page.locator("#workers-body tr[data-worker]")
    expect(row).to_have_count(1, timeout=TIMEOUT)
    expect(row).to_contain_text("timed")
    expect(row).to_contain_text("live")
    shot(page, "workers")


def test_apps_page_shows_the_sync_error(shot: Any, page: Any, dev: ServerProcess) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dev.url}/apps")
    cell = page.locator("#apps-body td[data-error='yes']")
    expect(cell).to_have_count(1, timeout=TIMEOUT)
    expect(cell).to_contain_text("unreachable")
    shot(page, "apps")
