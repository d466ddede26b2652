"""``perdure server`` in self-hosted mode with apps on the real Inngest Python SDK in production
mode (``INNGEST_DEV=0``, keys from the environment; each app its own process, as deployed).

One server (signing key K2, K1 still accepted as the fallback: a rotation under way) and four
apps: ``current`` (K2), ``old`` (K1, K2 as its fallback: not yet switched), ``ahead`` (K3, K2
as its fallback: switched before the server), ``stranger`` (K9 only). The first three sync
through ``-u``, run a two-step function end to end and send events from inside a run;
``stranger`` is refused. Bad bearers, wrong event keys and bad signatures are refused by
perdure (for its routes) and by the SDK (for requests to the app).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inngest._internal import transforms
from inngest._internal.errors import SendEventsError  # the SDK does not export it
from polling import eventually
from sdk_apps import free_port

import inngest
from perdure.inngest import signing
from perdure.inngest.call import build_call

DEADLINE = 40.0
HERE = Path(__file__).parent
K1, K2, K3, K9 = ("signkey-prod-" + c * 64 for c in "1239")
TOKEN = "api-token-for-the-test"
EVENT_KEYS = ("ek-main", "ek-second")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}


def _app_env(app_id: str, origin: str, key: str, fallback: str | None) -> dict[str, str]:
    env = _clean_env()
    env.update(APP_ID=app_id, INNGEST_DEV="0", INNGEST_SIGNING_KEY=key)
    env["INNGEST_EVENT_KEY"] = EVENT_KEYS[1] if app_id == "old" else EVENT_KEYS[0]
    if fallback:
        env["INNGEST_SIGNING_KEY_FALLBACK"] = fallback
    if app_id == "ahead":  # the two-variable spelling; the others use INNGEST_BASE_URL
        env["INNGEST_API_BASE_URL"] = env["INNGEST_EVENT_API_BASE_URL"] = origin
    else:
        env["INNGEST_BASE_URL"] = origin
    return env


def _wait_listening(url: str, proc: subprocess.Popen[bytes]) -> None:
    def up() -> bool:
        assert proc.poll() is None, f"{url} exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            return False
        return True

    eventually(f"{url} to listen", up)


APPS = {"current": (K2, None), "old": (K1, K2), "ahead": (K3, K2), "stranger": (K9, None)}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("signed")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for app_id, (key, fallback) in APPS.items():
            app_port = free_port()
            urls[app_id] = f"http://127.0.0.1:{app_port}/api/inngest"
            with (tmp / f"{app_id}.err").open("wb") as ferr:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, str(HERE / "signed_app.py"), str(app_port)],
                        env=_app_env(app_id, origin, key, fallback),
                        stdout=subprocess.DEVNULL,
                        stderr=ferr,
                    )
                )
        for proc, url in zip(procs, urls.values(), strict=True):
            _wait_listening(url, proc)
        env = _clean_env()
        env.update(
            PERDURE_API_TOKEN=TOKEN,
            INNGEST_SIGNING_KEY=K2,
            INNGEST_SIGNING_KEY_FALLBACK=K1,
            INNGEST_EVENT_KEY=" ".join(EVENT_KEYS),
            INNGEST_NO_POLL="1",
        )
        with (tmp / "server.err").open("wb") as ferr:
            server = subprocess.Popen(
                [
                    sys.executable, "-m", "perdure.cli", "server", "--port", str(port),
                    "--database-url", f"sqlite:///{tmp}/server.db", "--log-level", "warning",
                    *(arg for url in urls.values() for arg in ("-u", url)),
                ],
                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=ferr,
            )  # fmt: skip
        procs.append(server)
        _wait_listening(f"{origin}/health", server)
        with httpx.Client(base_url=origin, timeout=10) as http:
            senders = {k: _client(k, origin) for k in (*EVENT_KEYS, "ek-wrong")}
            try:
                yield {"http": http, "origin": origin, "urls": urls, "tmp": tmp, "send": senders}
            finally:
                for c in senders.values():  # the SDK client has no close(): its sync client
                    c._http_client._http_client_sync.close()
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
                proc.kill()
                raise


API = {"Authorization": f"Bearer {TOKEN}"}


def _functions(http: httpx.Client) -> set[str]:
    r = http.get("/api/v1/functions", headers=API)
    return {f["id"] for f in r.json()["functions"]} if r.status_code == 200 else set()


def _runs(http: httpx.Client, function_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = http.get(
        "/api/v1/runs", params={"function_id": function_id}, headers=API
    ).json()["runs"]
    return runs


def _finished(http: httpx.Client, function_id: str, count: int = 1) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        runs = _runs(http, function_id)
        ended = [r for r in runs if r["status"] in ("completed", "failed", "cancelled")]
        return ended if len(ended) >= count else None

    return eventually(f"{count} finished run(s) of {function_id}", done)


def _client(event_key: str, origin: str) -> inngest.Inngest:
    return inngest.Inngest(
        app_id="sender-test",
        is_production=True,
        signing_key=K2,
        event_key=event_key,
        api_base_url=origin,
        event_api_base_url=origin,
    )


SYNCED = {
    f"{a}-{f}"
    for a in ("current", "old", "ahead")
    for f in ("two-steps", "sender", "echo", "big-state")
}


def test_apps_sync_with_the_signing_key_or_its_fallback(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    eventually("the three apps to sync", lambda: _functions(http) >= SYNCED)
    assert not {f for f in _functions(http) if f.startswith("stranger-")}  # K9: refused
    # the Inngest REST routes with the hashed key, and the server kind the SDKs expect
    r = http.get(
        "/v1/events", headers={"Authorization": f"Bearer {transforms.hash_signing_key(K2)}"}
    )
    assert r.status_code == 200 and r.headers["x-inngest-server-kind"] == "cloud"


def test_runs_execute_end_to_end_with_signed_calls(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    eventually("the three apps to sync", lambda: _functions(http) >= SYNCED)
    ids = world["send"][EVENT_KEYS[0]].send_sync(inngest.Event(name="test/signed", data={"n": 7}))
    assert len(ids) == 1
    for app_id in ("current", "old", "ahead"):
        (run,) = _finished(http, f"{app_id}-two-steps")
        assert run["status"] == "completed", run
        got = http.get(f"/api/v1/runs/{run['id']}", headers=API).json()
        assert got["output"] == {
            "first": {"app": app_id, "n": 7, "pi": 3.25, "big": 1e21},
            "second": "é\u2028",
        }
    # events sent from inside runs (step.send_event, with the app's own event key)
    world["send"][EVENT_KEYS[1]].send_sync(inngest.Event(name="test/signed-send"))
    for app_id in ("current", "old", "ahead"):
        (run,) = _finished(http, f"{app_id}-sender")
        assert run["status"] == "completed", run
    echoes = _finished(http, "current-echo", count=3)  # one echo event per sender, 3 senders
    assert all(r["status"] == "completed" for r in echoes)


def test_state_over_4_mib_is_fetched_with_the_apps_signing_key(world: dict[str, Any]) -> None:
    # "old" signs with K1, the server's fallback: its fetches of the run state are accepted too
    http: httpx.Client = world["http"]
    eventually("the three apps to sync", lambda: _functions(http) >= SYNCED)
    world["send"][EVENT_KEYS[0]].send_sync(inngest.Event(name="test/signed-big-old"))
    (run,) = _finished(http, "old-big-state")
    assert run["status"] == "completed", run
    got = http.get(f"/api/v1/runs/{run['id']}", headers=API).json()
    size = 5 * 512 * 1024
    assert got["output"] == [size, size, True]


def test_perdure_refuses_wrong_keys(world: dict[str, Any]) -> None:
    http: httpx.Client = world["http"]
    # an event key that is not configured: the SDK raises with the server's message
    with pytest.raises(SendEventsError, match="Event key not found"):
        world["send"]["ek-wrong"].send_sync(inngest.Event(name="test/signed"))
    r = http.post("/e/ek-wrong", json={"name": "test/x"})
    assert r.status_code == 401 and r.json() == {
        "ids": [],
        "message": "",
        "error": "Event key not found",
        "status": 401,
    }
    assert http.post("/e", json={"name": "test/x"}).status_code == 401
    assert http.post(f"/e/{EVENT_KEYS[1]}", json={"name": "test/x"}).json()["status"] == 200
    # registration and the Inngest REST routes need a signing key as bearer
    payload = {"url": "http://127.0.0.1:1/api/inngest", "appName": "intruder", "functions": []}
    for headers in (
        {},
        {"Authorization": "Bearer undefined"},
        {"Authorization": f"Bearer {transforms.hash_signing_key(K9)}"},
        {"Authorization": f"Bearer {TOKEN}"},  # the API token is not a signing key
    ):
        r = http.post("/fn/register", json=payload, headers=headers)
        assert r.status_code == 401 and "unauthorized" in r.json()["error"], r.text
        assert http.get("/v1/events", headers=headers).status_code == 401
        assert http.get("/dev", headers=headers).status_code == 401
        assert (
            http.delete("/fn/remove", params={"app": "current"}, headers=headers).status_code == 401
        )
    # the hashed key with the TS SDK's prefix, and the fallback key, are accepted
    for key in (K2, K1):
        bearer = {"Authorization": f"Bearer signkey-prod-{transforms.hash_signing_key(key)}"}
        assert http.get("/v1/events", headers=bearer).status_code == 200
    assert http.get("/api/v1/runs").status_code == 401  # the API keeps its own token
    err = (world["tmp"] / "server.err").read_text()
    for key in (K1, K2, K3, K9):
        assert signing.secret(key) not in err  # keys are never logged


def test_the_sdk_refuses_calls_with_a_bad_signature(world: dict[str, Any]) -> None:
    url = world["urls"]["current"]
    call = build_call(
        url=f"{url}?fnId=current-two-steps",
        step_id="step",
        run_id="01J00000000000000000000000",
        events=[{"name": "test/signed", "data": {"n": 1}, "id": "e1", "ts": 1}],
        steps={},
        stack=[],
        attempt=0,
        max_attempts=1,
        disable_immediate_execution=False,
        version=-1,
        server_kind="cloud",
    )
    body = signing.canonicalize(call.body)
    target = call.url
    now = time.time()
    headers = {"Content-Type": "application/json"}
    bad = [
        {},  # unsigned
        {"X-Inngest-Signature": f"t={int(now)}&s={'0' * 64}"},  # forged
        {"X-Inngest-Signature": signing.sign(body, K9, now)},  # another key
        {"X-Inngest-Signature": signing.sign(body + b" ", K2, now)},  # another body
    ]
    for extra in bad:
        r = httpx.post(target, content=body, headers={**headers, **extra}, timeout=10)
        assert r.status_code == 401, (extra, r.status_code, r.text)
    good = httpx.post(
        target,
        content=body,
        headers={**headers, "X-Inngest-Signature": signing.sign(body, K2, now)},
        timeout=10,
    )
    assert good.status_code in (200, 206), good.text
    # the app signs its answer with the key that verified the request: perdure's check passes
    signing.verify(good.content, good.headers.get("x-inngest-signature"), [K2], time.time())
