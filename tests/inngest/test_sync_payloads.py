"""``/fn/register`` payloads as the real Inngest Python SDK sends them, parsed into perdure
functions: every flow-control option maps onto perdure's FlowControl, records round-trip, and
invalid payloads fail with a message naming the field."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sdk_apps import Served, client, every_option_functions, fastapi_app

from perdure.engine.flow.options import (
    Batch,
    CancelOn,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
)
from perdure.errors import InvalidInputError
from perdure.functions import CronTrigger, EventTrigger
from perdure.inngest.functions import InngestFunction, parse_register
from perdure.inngest.routes import seeded_ids


class _Capture(BaseHTTPRequestHandler):
    bodies: list[tuple[str, dict[str, str], Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        type(self).bodies.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        reply = json.dumps({"ok": True, "modified": True}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def captured() -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """The registration the SDK POSTs when its serve URL gets the sync PUT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        c = client("shop", origin)
        app = fastapi_app({"/a": (c, every_option_functions(c))})
        with Served(app) as served:
            r = httpx.put(
                f"{served.url}/a/api/inngest", headers={"X-Inngest-Server-Kind": "dev"}, timeout=30
            )
            assert r.status_code == 200, r.text
            _Capture.bodies[0][2]["_served"] = served.url
        ((path, headers, body),) = _Capture.bodies
        assert path == "/fn/register"
        yield headers, body
    finally:
        server.shutdown()
        server.server_close()


def test_the_sdk_payload_parses_with_its_key_spellings(
    captured: tuple[dict[str, str], dict[str, Any]],
) -> None:
    headers, body = captured
    assert headers["content-type"] == "application/json"  # the server's guard requires it
    assert headers["x-inngest-expected-server-kind"] == "dev"
    assert "appname" in body and "deploy_type" in body  # Python's spellings
    app = parse_register(body)
    assert app.id == "shop"
    assert app.url == f"{body['_served']}/a/api/inngest"
    assert app.framework == "fast_api" and (app.sdk or "").startswith("py:v0.5.")
    ids = [f.id for f in app.functions]
    assert ids == [
        "shop-limited",
        "shop-limited-failure",
        "shop-windowed",
        "shop-debounced",
        "shop-batched",
    ]
    limited = app.functions[0]
    assert limited.name == "Limited"
    assert limited.url == f"{app.url}?fnId=shop-limited&stepId=step"
    assert limited.retry.retries == 2
    assert limited.triggers == (EventTrigger("shop/order.placed", "event.data.n > 1"),)
    failure = app.functions[1]
    assert failure.retry.retries == 0  # Python's failure handlers: attempts 0
    (trigger,) = failure.triggers
    assert isinstance(trigger, EventTrigger) and trigger.name == "inngest/function.failed"
    assert trigger.matches(
        {"name": "inngest/function.failed", "data": {"function_id": "shop-limited"}}
    )
    assert app.functions[3].retry.retries == 4  # none declared: Inngest's default


def test_every_flow_control_option_maps_onto_perdure(
    captured: tuple[dict[str, str], dict[str, Any]],
) -> None:
    fns = {f.id: f for f in parse_register(captured[1]).functions}
    flow = fns["shop-limited"].flow
    assert flow.concurrency == (
        Concurrency(2, "event.data.user", "fn"),
        Concurrency(5, "event.data.tenant", "env"),  # account: one database is one account
    )
    assert flow.throttle == Throttle(5, "1m", 2, "event.data.user")
    assert flow.throttle is not None and flow.throttle.period_seconds == 60
    assert flow.priority == Priority("event.data.vip ? 120 : 0")
    assert flow.timeouts is not None
    assert (flow.timeouts.start_seconds, flow.timeouts.finish_seconds) == (30, 600)
    assert flow.cancel_on == (
        CancelOn("shop/order.cancelled", "event.data.id == async.data.id", None, "1d"),
    )
    assert flow.cancel_on[0].timeout_seconds == 86400
    assert flow.singleton == Singleton("event.data.user", "cancel")

    windowed = fns["shop-windowed"]
    assert windowed.triggers == (EventTrigger("shop/*"), CronTrigger("0 9 * * *", "Europe/Paris"))
    assert windowed.flow.rate_limit == RateLimit(10, "1h", "event.data.user")
    assert windowed.flow.rate_limit is not None
    assert windowed.flow.rate_limit.period_seconds == 3600
    assert windowed.flow.idempotency == "event.data.order"

    debounce = fns["shop-debounced"].flow.debounce
    assert debounce == Debounce("5s", "event.data.user", "1m")
    assert debounce is not None and (debounce.period_seconds, debounce.timeout_seconds) == (5, 60)
    batch = fns["shop-batched"].flow.batch
    assert batch == Batch(10, "5s", "event.data.user")
    assert batch is not None and batch.timeout_seconds == 5


def test_a_record_rebuilds_the_function_in_any_process(
    captured: tuple[dict[str, str], dict[str, Any]],
) -> None:
    for fn in parse_register(captured[1]).functions:
        record = fn.record()
        assert record.config["driver"] == "inngest"
        assert record.config["url"] == fn.url and record.app == "shop"
        # through JSON, as the store keeps it
        from perdure.store.rows import function_from_row, function_values

        stored = function_from_row(function_values(record))
        again = InngestFunction.from_record(stored)
        assert again == fn
        assert again is not None and again.flow.to_dict() == fn.flow.to_dict()
        assert again.raw == fn.raw


def test_a_native_record_is_not_an_inngest_function() -> None:
    from perdure.functions import FunctionRecord

    assert InngestFunction.from_record(FunctionRecord("f", "app", (), {"retries": 1})) is None


def _payload(**fn: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "app-f",
        "triggers": [{"event": "a/b"}],
        "steps": {
            "step": {
                "id": "step",
                "name": "step",
                "runtime": {"type": "http", "url": "http://h:1/api?fnId=app-f&stepId=step"},
            }
        },
    }
    base.update(fn)
    return {"appName": "app", "deployType": "ping", "url": "http://h:1/api", "functions": [base]}


def test_ts_spellings_and_shorthand_forms() -> None:
    app = parse_register(
        _payload(concurrency=3, retries=None, steps=_payload()["functions"][0]["steps"])
    )
    assert app.id == "app" and app.deploy_type == "ping"
    assert app.functions[0].flow.concurrency == (Concurrency(3),)
    single = parse_register(_payload(concurrency={"limit": 1, "key": "event.data.k"}))
    assert single.functions[0].flow.concurrency == (Concurrency(1, "event.data.k"),)
    unlimited = parse_register(_payload(concurrency=[{"limit": 0}]))
    assert unlimited.functions[0].flow.concurrency == ()
    clamped = _payload()
    clamped["functions"][0]["steps"]["step"]["retries"] = {"attempts": 99}
    assert parse_register(clamped).functions[0].retry.retries == 20
    assert parse_register(_payload(triggers=[])).functions[0].triggers == ()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"url": "http://h/api", "functions": []}, "app name ('appName' or 'appname')"),
        ({"appName": "", "url": "http://h/api"}, "app name"),
        ({"appName": "a", "url": "ftp://h/api"}, "url must be an absolute http(s) URL"),
        ({"appName": "a", "url": "http://[::1/api"}, "url must be an absolute http(s) URL"),
        ({"appName": "a", "url": "http://h/api", "functions": {}}, "functions must be an array"),
        (_payload(id=""), "functions[0].id must be a non-empty string"),
        (_payload(triggers=[{"nope": 1}]), "triggers[0] must have 'event' or 'cron'"),
        (_payload(triggers=[{"cron": "61 * * * *"}]), "function 'app-f': triggers[0]"),
        (_payload(triggers=[{"event": "a", "expression": "event.data.("}]), "triggers[0]"),
        (_payload(steps={}), "steps must be an object"),
        (
            _payload(steps={"step": {"runtime": {"type": "ws", "url": "ws://h"}}}),
            "Connect transport",
        ),
        (_payload(concurrency="x"), "concurrency: must be a number, an object or an array"),
        (_payload(concurrency=[{"limit": 1}] * 3), "concurrency: at most 2 limits"),
        (_payload(concurrency={"limit": 1, "scope": "env"}), "concurrency: scope='env' needs"),
        (_payload(concurrency={"limit": 1, "scope": "world"}), "scope must be 'fn', 'env'"),
        (_payload(throttle={"limit": 1}), "throttle: period must be a non-empty string"),
        (_payload(throttle={"limit": 1, "period": "1 fortnight"}), "throttle: period"),
        (_payload(rateLimit={"limit": "x", "period": "1h"}), "rateLimit: limit must be an integer"),
        (_payload(debounce={"period": "0s"}), "debounce: period must be longer than zero"),
        (_payload(batchEvents={"maxSize": 5, "timeout": "5s", "if": "x"}), "batchEvents: 'if'"),
        (_payload(batchEvents={"maxSize": 0, "timeout": "5s"}), "batchEvents: max_size"),
        (_payload(singleton={"mode": "queue"}), "singleton: mode must be 'skip' or 'cancel'"),
        (_payload(idempotency=5), "idempotency: must be a CEL expression"),
        (_payload(cancel=[{"if": "true"}]), "cancel[0]: event must be a non-empty string"),
        (_payload(priority={"run": "event.data.("}), "priority: run"),
        (
            _payload(debounce={"period": "1s"}, batchEvents={"maxSize": 2, "timeout": "1s"}),
            "debounce and batch cannot be combined",
        ),
    ],
)
def test_invalid_payloads_name_the_field(payload: Any, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_register(payload)
    assert message in info.value.message


def test_a_function_id_twice_is_refused() -> None:
    payload = _payload()
    payload["functions"].append(payload["functions"][0])
    with pytest.raises(InvalidInputError, match="appears twice"):
        parse_register(payload)


def test_seeded_ids_are_deterministic_ulids() -> None:
    seed = "1700000000000,AAECAwQFBgcI/w=="  # bytes 0..8, then 0xff
    first, second = seeded_ids(seed, 2) or [], seeded_ids(seed, 2) or []
    assert first == second and len(set(first)) == 2
    assert all(len(i) == 26 for i in first)
    from perdure.ids import id_time_ms

    assert {id_time_ms(i) for i in first} == {1700000000000}
    assert first[0] < first[1]  # the i-th adds i to the low 32 bits
    assert seeded_ids("nonsense", 1) is None and seeded_ids(None, 1) is None
    assert seeded_ids("12,AAAA", 1) is None  # not 10 bytes
