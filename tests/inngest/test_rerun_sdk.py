"""Rerun and replay of a function on the real Inngest Python SDK, through perdure's REST API:
a replay's kept steps are memoized in the call request (their bodies do not run again), the
named step and those after it run; a rerun runs everything again. The API's 4xx on bad input."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import fastapi
from life_app import APP_ID, hosted
from sdk_apps import capture_registrations

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest


def build(ledger: Counter[str], broken: dict[str, bool]) -> Callable[[str], Any]:
    def make(origin: str) -> Any:
        client = inngest.Inngest(
            app_id=APP_ID, is_production=False, api_base_url=origin, event_api_base_url=origin
        )

        @client.create_function(
            fn_id="steps", trigger=inngest.TriggerEvent(event="rr/go"), retries=0
        )
        async def steps(ctx: inngest.Context) -> Any:
            def body(name: str) -> Any:
                async def run() -> str:
                    ledger[name] += 1
                    if name == "c" and broken["c"]:
                        raise inngest.NonRetriableError("c is broken")
                    return f"{name}{ledger[name]}"

                return run

            out = [await ctx.step.run(k, body(k)) for k in ("a", "b", "c")]
            return {"out": out, "n": ctx.event.data.get("n")}

        app = fastapi.FastAPI()
        inngest.fast_api.serve(app, client, [steps])
        capture_registrations(app)
        return app

    return make


async def test_rerun_and_replay_of_an_sdk_function_over_http(db_url: str) -> None:
    ledger: Counter[str] = Counter()
    broken = {"c": True}
    async with hosted(db_url, build(ledger, broken)) as h:
        first = await h.ended(await h.trigger("rr/go", {"n": 7}))
        assert str(first.status) == "failed" and ledger == {"a": 1, "b": 1, "c": 1}
        broken["c"] = False

        # Bad input: precise 4xx, nothing created.
        res = await h.http.post(f"/api/v1/runs/{first.id}/replay", json={"from_step": "zz"})
        assert res.status_code == 400 and "'zz'" in res.json()["error"]["message"]
        res = await h.http.post(f"/api/v1/runs/{first.id}/replay", json={"step": "c"})
        assert res.status_code == 400, res.text
        res = await h.http.post(f"/api/v1/runs/{first.id}/replay", json=["c"])
        assert res.status_code == 400, res.text
        res = await h.http.post(f"/api/v1/runs/{first.id}/rerun", json={"x": 1})
        assert res.status_code == 400, res.text
        res = await h.http.post(
            "/api/v1/runs/01J00000000000000000000000/replay", json={"from_step": "c"}
        )
        assert res.status_code == 404 and res.json()["error"]["code"] == "run_not_found"
        assert ledger == {"a": 1, "b": 1, "c": 1}

        # The step by its name as written (its id is the SDK's hash of it). The SDK reports the
        # failing step c as the function's error, so c has no record: replay from b.
        res = await h.http.post(f"/api/v1/runs/{first.id}/replay", json={"from_step": "b"})
        assert res.status_code == 201, res.text
        body = res.json()
        assert res.headers["location"] == f"/api/v1/runs/{body['id']}"
        assert (body["replay_of"], body["rerun_of"]) == (first.id, None)
        assert [s["name"] for s in body["steps"]] == ["a"]
        done = await h.ended(body["id"])
        assert str(done.status) == "completed", done.error
        assert done.output == {"out": ["a1", "b2", "c2"], "n": 7}
        assert ledger == {"a": 1, "b": 2, "c": 2}
        assert done.replay_from_step == next(s.id for s in first.steps if s.name == "b")

        res = await h.http.post(f"/api/v1/runs/{first.id}/rerun")
        assert res.status_code == 201 and res.json()["rerun_of"] == first.id, res.text
        rerun = await h.ended(res.json()["id"])
        assert rerun.output == {"out": ["a2", "b3", "c3"], "n": 7}
        assert ledger == {"a": 2, "b": 3, "c": 3}
        shown = (await h.http.get(f"/api/v1/runs/{rerun.id}")).json()
        assert (shown["rerun_of"], shown["replay_of"], shown["replay_from_step"]) == (
            first.id,
            None,
            None,
        )
