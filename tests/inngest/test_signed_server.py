"""Self-hosted mode in process: the driver's signed calls and verified answers (over a mock
transport), the Inngest routes behind the keys (on both backends), a server without keys, and
the ``perdure server`` key options."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from click.testing import CliRunner
from inngest._internal import net, server_lib, transforms

import perdure
from perdure.cli import cli
from perdure.inngest import signing
from perdure.inngest.auth import InngestKeys, ResponseSignatureError
from perdure.inngest.call import CallRequest, build_call
from perdure.inngest.driver import InngestDriver
from perdure.inngest.routes import InngestRoutes
from perdure.server import create_app

KEY = "signkey-prod-" + "ab" * 32
OLD = "signkey-prod-" + "cd" * 32
KEYS = InngestKeys.create(KEY, [OLD], ["ek-1"])


def _call() -> CallRequest:
    return build_call(
        url="http://app.test/api/inngest?fnId=f",
        step_id="step",
        run_id="01J00000000000000000000000",
        events=[{"name": "a/b", "data": {"x": 1.0, "é": [3, 2]}, "id": "e", "ts": 5}],
        steps={"s1": {"data": 1e21}},
        stack=["s1"],
        attempt=0,
        max_attempts=4,
        disable_immediate_execution=False,
        version=2,
        server_kind="cloud",
    )


async def test_calls_are_signed_and_answers_verified() -> None:
    seen: list[httpx.Request] = []
    answer = b'{"done":true}'
    sign_with: list[str | None] = [KEY]

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"x-inngest-sdk": "inngest-py:v0.5.19"}
        if sign_with[0] is not None:
            sig = net.sign_response(answer, sign_with[0])
            assert isinstance(sig, str)
            headers["x-inngest-signature"] = sig
        return httpx.Response(200, content=answer, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as http:
        driver = InngestDriver(server_kind="cloud", http=http, keys=KEYS)
        request = _call()
        status, _, body = await driver._post(request)
        assert (status, body) == (200, answer)
        sent = seen[-1]
        # the body is canonical (what the Python SDK re-computes) and signed over exactly that
        assert sent.content == signing.canonical_json(orjson.loads(request.body))
        assert b'"x":1,' in sent.content and b"1e+21" in sent.content
        got = net.validate_request_sig(
            body=sent.content,
            headers={"x-inngest-signature": sent.headers["x-inngest-signature"]},
            mode=server_lib.ServerKind.CLOUD,
            signing_key=KEY,
            signing_key_fallback=None,
        )
        assert got == KEY
        assert sent.headers["x-inngest-server-kind"] == "cloud"
        sign_with[0] = OLD  # an app answering with the fallback key is still believed
        assert (await driver._post(request))[0] == 200
        for bad in (None, "signkey-prod-" + "ef" * 32):
            sign_with[0] = bad
            with pytest.raises(ResponseSignatureError):
                await driver._post(request)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[perdure.App]:
    a = perdure.App("signed", db_url)
    async with a:
        yield a


def _client(app: perdure.App, keys: InngestKeys | None) -> httpx.AsyncClient:
    routes = InngestRoutes(
        app, InngestDriver(server_kind="cloud"), server_kind="cloud", keys=keys, keys_required=True
    )
    asgi = create_app(
        app, dev=True, api_token=None, extra_routes=routes.routes(), response_headers=routes.headers
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://localhost")


REGISTER = {
    "url": "http://127.0.0.1:1/api/inngest",
    "appName": "signed-app",
    "framework": "fast_api",
    "functions": [
        {
            "id": "signed-app-f",
            "name": "f",
            "triggers": [{"event": "a/b"}],
            "steps": {
                "step": {
                    "id": "step",
                    "name": "step",
                    "runtime": {"type": "http", "url": "http://127.0.0.1:1/api/inngest?fnId=f"},
                }
            },
        }
    ],
}


async def test_routes_need_the_keys(app: perdure.App) -> None:
    async with _client(app, KEYS) as c:
        r = await c.post("/fn/register", json=REGISTER)
        assert r.status_code == 401 and r.headers["x-inngest-server-kind"] == "cloud"
        assert (await c.get("/api/v1/functions")).json()["functions"] == []  # nothing written
        bearer = {"Authorization": f"Bearer {transforms.hash_signing_key(OLD)}"}
        r = await c.post("/fn/register", json=REGISTER, headers=bearer)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        r = await c.post("/e/ek-2", json={"name": "a/b"})
        assert r.status_code == 401 and r.json()["error"] == "Event key not found"
        assert (await c.post("/e/ek-1", json={"name": "a/b"})).json()["status"] == 200
        runs = (await c.get("/api/v1/runs")).json()["runs"]
        assert [r["function_id"] for r in runs] == ["signed-app-f"]
        # The run state an SDK fetches on the use_api path: the signing key as bearer too.
        run_id = runs[0]["id"]
        for what in ("batch", "actions"):
            r = await c.get(f"/v0/runs/{run_id}/{what}")
            assert r.status_code == 401 and "signing key" in r.json()["error"]
        r = await c.get(f"/v0/runs/{run_id}/batch", headers=bearer)
        assert r.status_code == 200 and [e["name"] for e in r.json()] == ["a/b"]
        r = await c.get(f"/v0/runs/{run_id}/actions", headers=bearer)
        assert r.status_code == 200 and r.json() == {}
        r = await c.get("/v0/runs/01HNOSUCHRUN0000000000000/actions", headers=bearer)
        assert r.status_code == 404 and r.json()["status"] == 404


async def test_a_server_without_keys_refuses_inngest_apps(app: perdure.App) -> None:
    async with _client(app, None) as c:
        r = await c.post("/fn/register", json=REGISTER)
        assert r.status_code == 503 and "signing key" in r.json()["error"]
        r = await c.post("/e/anything", json={"name": "a/b"})
        assert r.status_code == 503 and r.json()["ids"] == []
        assert (await c.get("/api/v1/events")).json()["events"] == []


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--signing-key", "abcd"], {}, "at least one event key"),
        (["--event-key", "ek"], {}, "needs a signing key"),
        (["--signing-key", "not-hex", "--event-key", "ek"], {}, "hex string"),
        ([], {"INNGEST_SIGNING_KEY": "abc", "INNGEST_EVENT_KEY": "ek"}, "hex string"),
        (["-u", "http://127.0.0.1:9/api/inngest"], {}, "-u needs a signing key"),
    ],
)
def test_server_key_options_are_checked(args: list[str], env: dict[str, str], message: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["server", "--no-auth", "--port", "0", *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "not-hex" not in result.output  # keys are never echoed


def test_server_help_shows_the_env_twins() -> None:
    out = CliRunner().invoke(cli, ["server", "--help"]).output
    for name in (
        "PERDURE_SIGNING_KEY",
        "INNGEST_SIGNING_KEY",
        "INNGEST_SIGNING_KEY_FALLBACK",
        "PERDURE_EVENT_KEY",
        "INNGEST_EVENT_KEY",
        "PERDURE_SDK_URL",
    ):
        assert name in out
