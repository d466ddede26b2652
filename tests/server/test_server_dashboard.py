"""The dashboard's pages and static files over HTTP (the browser tests are in tests/e2e)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from srv_helpers import ServerProcess, start_server

from perdure.server.dashboard import PAGES, STATIC_DIR


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``perdure dev --app srv_app:app`` on a fresh SQLite database."""
    workdir = tmp_path_factory.mktemp("dash")
    server = start_server(
        workdir, ["dev", "--app", "srv_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture
def client(dev: ServerProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the dev server."""
    with httpx.Client(base_url=dev.url, timeout=30) as c:
        yield c


PATHS = {
    "/runs": "runs.js",
    "/runs/01ABC": "run.js",
    "/events": None,
    "/events/ev-1": None,
    "/functions": None,
    "/functions/app-fn/with/slash": None,
    "/schedules": None,
    "/workers": None,
    "/apps": None,
    "/login": "login.js",
}


def test_every_page_route_is_listed() -> None:
    assert len(PAGES) == len(PATHS)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_page_is_html_with_a_strict_policy(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<link rel="stylesheet" href="/static/app.css">' in r.text
    script = PATHS[path]
    if script is not None:
        assert f'src="/static/{script}"' in r.text
    for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        assert client.get(ref).status_code == 200, ref


def test_static_files_are_served_with_their_types(client: httpx.Client) -> None:
    for name, kind in [
        ("app.css", "text/css"),
        ("api.js", "javascript"),
        ("nav.js", "javascript"),
    ]:
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert kind in r.headers["content-type"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.content == (STATIC_DIR / name).read_bytes()
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../routes.py").status_code == 404


def test_scripts_import_only_local_modules() -> None:
    """No CDN, no external fonts: every import and URL in the static files is local."""
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org", ""), path.name
        assert "https://" not in text.replace("https://...", ""), path.name
        for module in re.findall(r'from "([^"]+)"', text):
            assert module.startswith("./") and (STATIC_DIR / module[2:]).is_file(), module
