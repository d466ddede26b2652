"""The browser test harness: a real ``perdure dev`` with the shop app, Debian's chromium
driven by Playwright, a page per test. A test module loads these fixtures with
``pytest_plugins = ["e2e_harness"]`` (not a conftest.py: mypy knows the root
tests/conftest.py by that name).

Skipped with a message when /usr/bin/chromium or the playwright package is missing; required
(a failure) when ``CI`` or ``PERDURE_REQUIRE_BROWSER=1`` is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "server"))  # srv_helpers: the server tests' launcher

from srv_helpers import ServerProcess, clean_env, start_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = HERE.parents[1] / "docs" / "screenshots"
DEADLINE_MS = 20_000
"""How long an expectation waits for the page (generous: the machine is shared)."""


def _missing() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium, for one test module: Playwright's sync API runs an event loop
    of its own while it is open, which would break the asyncio tests that pytest-xdist runs
    after it in the same process if it lived longer."""
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") or os.environ.get("PERDURE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required here: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``perdure dev --app shop_app:app`` on a fresh SQLite database."""
    workdir = tmp_path_factory.mktemp("e2e")
    env = clean_env(PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    server = start_server(
        workdir, ["dev", "--app", "shop_app:app"], f"sqlite:///{workdir}/perdure.db", env
    )
    yield server
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the server (to make runs the page must show)."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def page(browser: Any, server: ServerProcess) -> Iterator[Any]:
    """A fresh page (its own context) on the server; console errors fail the test."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1360, "height": 900})
    p = context.new_page()
    p.set_default_timeout(DEADLINE_MS)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    # a 404 or 409 the page handles is logged by chromium as "Failed to load resource"
    p.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and "Failed to load resource" not in m.text
            else None
        ),
    )
    yield p
    context.close()
    assert not errors, errors


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def shot() -> Callable[[Any, str], None]:
    """``shot(page, NAME)`` saves a screenshot of the whole page as docs/screenshots/NAME.png
    (the README's)."""
    return _shot
