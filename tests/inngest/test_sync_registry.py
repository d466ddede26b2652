"""The app registry on both backends: a re-sync replaces an app's function set (removed
functions stop being triggered), a restarted server rebuilds the apps from the database, and
function ids cannot be taken from another app or a native function."""

from __future__ import annotations

from typing import Any

import pytest

import perdure
from perdure.inngest.driver import InngestDriver
from perdure.inngest.sync import AppRegistry, ConflictError


def payload(app: str, *names: str, **extra: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:9/{app}"
    return {
        "appname": app,
        "deploy_type": "ping",
        "url": url,
        "functions": [
            {
                "id": f"{app}-{n}",
                "triggers": [{"event": f"t/{n}"}],
                "steps": {
                    "step": {
                        "runtime": {"type": "http", "url": f"{url}?fnId={app}-{n}&stepId=step"}
                    }
                },
                **extra,
            }
            for n in names
        ],
    }


async def test_a_resync_replaces_the_app_functions(db_url: str) -> None:
    app = perdure.App("host", db_url)
    driver = InngestDriver()
    registry = AppRegistry(app, driver)
    try:
        first = await registry.register(payload("a", "x", "y"), b"1")
        assert first.modified and first.functions == ("a-x", "a-y")
        await registry.register(payload("b", "z"), b"2")
        same = await registry.register(payload("a", "x", "y"), b"1")
        assert not same.modified and same.app_id == first.app_id
        again = await registry.register(payload("a", "x", concurrency=2), b"3")
        assert again.modified and again.removed == ("a-y",)
        records = {r.id: r for r in await app.store.list_functions()}
        assert set(records) == {"a-x", "b-z"}
        assert records["a-x"].flow.concurrency[0].limit == 2
        assert set(driver.functions) == {"a-x", "b-z"}
        # the removed function is no longer triggered; the kept one is
        sent = await app.send_detailed([perdure.Event("t/y"), perdure.Event("t/x")])
        assert sent[0].run_ids == [] and len(sent[1].run_ids) == 1

        # another server process on the database rebuilds the apps
        other = InngestDriver()
        apps = await AppRegistry(app, other).load()
        assert [a.id for a in apps] == ["a", "b"]
        assert other.functions == driver.functions

        with pytest.raises(ConflictError, match="belongs to the Inngest app 'b'"):
            await registry.register(payload("c", "q") | {"functions": [
                payload("b", "z")["functions"][0]]})  # fmt: skip
        assert await registry.remove(url="http://127.0.0.1:9/a") == ["a-x"]
        assert {r.id for r in await app.store.list_functions()} == {"b-z"}
        assert set(driver.functions) == {"b-z"}
    finally:
        await app.close()


async def test_a_native_function_id_is_not_taken(db_url: str) -> None:
    app = perdure.App("host", db_url)

    @app.function(id="a-x", trigger=perdure.event("t/x"))
    async def native(ctx: Any, event: Any) -> None:
        return None

    try:
        await app.register()
        with pytest.raises(ConflictError, match="native perdure function"):
            await AppRegistry(app, InngestDriver()).register(payload("a", "x"))
        (record,) = await app.store.list_functions()
        assert record.config.get("driver") is None  # unchanged
    finally:
        await app.close()
