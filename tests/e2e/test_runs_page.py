"""The runs list and the run detail in headless chromium, against a real ``perdure dev``."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

pytest_plugins = ["e2e_harness"]  # the fixtures: browser, server, api, page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def start(api: httpx.Client, fn: str, data: dict[str, Any]) -> str:
    r = api.post(f"/api/v1/functions/{fn}/runs", json={"data": data})
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    return run_id


def wait(api: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in (statuses or ("completed", "failed", "cancelled")):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def row(page: Any, run_id: str) -> Any:
    return page.locator(f'tr[data-run="{run_id}"]')


def test_root_redirects_and_the_list_filters_and_pages(page: Any, api: httpx.Client) -> None:
    marker = uuid.uuid4().hex[:12]
    runs = [start(api, "checkout", {"sku": f"sku-{marker}", "n": i}) for i in range(55)]
    other = start(api, "refund", {"n": marker})
    for run_id in (runs[-1], other):
        wait(api, run_id)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/runs$"))
    expect(page.locator("#live")).to_have_text("live")
    # the text filter, kept in the URL
    page.fill("#f-text", f"sku-{marker}")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(f"text=sku-{marker}"))
    expect(page.locator("tr[data-run]")).to_have_count(50)
    expect(row(page, runs[-1])).to_be_visible()
    expect(row(page, other)).to_have_count(0)
    # the next page holds the 5 oldest, and back
    page.click("#next")
    expect(page.locator("tr[data-run]")).to_have_count(5)
    expect(row(page, runs[0])).to_be_visible()
    page.click("#prev")
    expect(page.locator("tr[data-run]")).to_have_count(50)
    # status and function filters
    page.goto(f"/runs?status=failed&text={marker}")
    expect(page.locator("tr[data-run]")).to_have_count(1)
    expect(row(page, other)).to_have_attribute("data-status", "failed")
    page.goto(f"/runs?function_id=refund&run_id={other[:20]}")
    expect(row(page, other)).to_be_visible()
    page.goto(f"/runs?text={marker}&created_after=2999-01-01T00:00")
    expect(page.locator("td.empty")).to_contain_text("No run matches")


def test_live_update_without_reload(page: Any, api: httpx.Client) -> None:
    marker = uuid.uuid4().hex[:12]
    page.goto(f"/runs?function_id=reminder&text={marker}")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("td.empty")).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    run_id = start(api, "reminder", {"who": marker})
    expect(row(page, run_id)).to_be_visible()
    expect(row(page, run_id)).to_have_attribute("data-status", "sleeping")
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    expect(row(page, run_id)).to_have_attribute("data-status", "cancelled")
    assert page.evaluate("window.__sameDocument") is True  # no reload happened


def test_bulk_cancel_asks_with_the_count(page: Any, api: httpx.Client) -> None:
    marker = uuid.uuid4().hex[:12]
    naps = [start(api, "reminder", {"batch": marker, "i": i}) for i in range(3)]
    for run_id in naps:
        wait(api, run_id, "sleeping")
    page.goto(f"/runs?text={marker}")
    expect(page.locator("tr[data-run]")).to_have_count(3)
    page.click("#bulk-cancel")
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Cancel 3 runs?")
    expect(dialog.locator("[data-bulk-count]")).to_have_attribute("data-bulk-count", "3")
    dialog.locator("[data-dismiss]").click()  # dismissed: nothing changes
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert all(api.get(f"/api/v1/runs/{i}").json()["status"] == "sleeping" for i in naps)
    page.click("#bulk-cancel")
    page.locator("dialog[open] [data-confirm]").click()
    expect(page.locator(".toast")).to_contain_text("Cancelled 3 runs")
    for run_id in naps:
        expect(row(page, run_id)).to_have_attribute("data-status", "cancelled")
        assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "cancelled"
    page.screenshot(path=str(SCREENSHOTS / "runs.png"))


def test_run_detail_waterfall_output_error_and_replay(page: Any, api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/events", json={"name": "shop/order.placed", "data": {"sku": "mug", "n": 7}}
    )
    [run_id] = r.json()["events"][0]["run_ids"]
    event_id = r.json()["ids"][0]
    wait(api, run_id)
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-id")).to_have_text(run_id)
    rows = page.locator("#waterfall .wf-row")
    expect(rows).to_have_count(4)
    expect(page.locator('.wf-row[data-kind="sleep"] .wf-bar.kind-sleep')).to_have_count(1)
    page.click('.wf-row[data-step="charge-card"]')
    expect(page.locator("#step-detail [data-output]")).to_contain_text('"amount": 0')
    expect(page.locator("#step-detail [data-input]")).to_contain_text('"currency": "EUR"')
    expect(page.locator(f'[data-event="{event_id}"]')).to_contain_text('"sku": "mug"')
    expect(page.locator("#run-output")).to_contain_text("TRK-7")
    page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)
    # replay from charge-card: keeps reserve-stock and settle
    page.click('.wf-row[data-step="charge-card"]')
    page.click("#replay-step")
    expect(page.locator("dialog[open]")).to_contain_text("2 completed steps")
    page.locator("dialog[open] [data-confirm]").click()
    expect(page).not_to_have_url(re.compile(f"/runs/{run_id}$"))
    new_id = page.url.rsplit("/", 1)[1]
    new = wait(api, new_id)
    assert new["replay_of"] == run_id and new["replay_from_step"] == "charge-card"
    old = {s["id"]: s for s in api.get(f"/api/v1/runs/{run_id}").json()["steps"]}
    kept = {s["id"]: s for s in new["steps"]}
    assert kept["reserve-stock"]["output"] == old["reserve-stock"]["output"]
    expect(page.locator('[data-link="replay_of"]')).to_contain_text(run_id)


def test_failed_step_error_then_rerun(page: Any, api: httpx.Client) -> None:
    run_id = start(api, "refund", {"n": 3})
    wait(api, run_id)
    page.goto(f"/runs/{run_id}")
    step = page.locator('.wf-row[data-step="refund-card"]')
    expect(step).to_have_attribute("data-status", "failed")
    expect(page.locator("#step-detail")).to_contain_text("card declined by the issuer")
    expect(page.locator("#cancel")).to_have_count(0)  # an ended run cannot be cancelled
    page.click("#rerun")
    page.locator("dialog[open] [data-confirm]").click()
    expect(page).not_to_have_url(re.compile(f"/runs/{run_id}$"))
    expect(page.locator('[data-link="rerun_of"]')).to_contain_text(run_id)


def test_cancel_from_the_detail(page: Any, api: httpx.Client) -> None:
    run_id = start(api, "reminder", {})
    wait(api, run_id, "sleeping")
    page.goto(f"/runs/{run_id}")
    expect(page.locator('.wf-row[data-kind="sleep"]')).to_contain_text("sleeps until")
    page.click("#cancel")
    page.locator("dialog[open] [data-confirm]").click()
    expect(page.locator(".page-head .badge")).to_have_text("cancelled")
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "cancelled"
