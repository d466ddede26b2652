"""``perdure.Client``, the remote client, against a real ``perdure server --api-token`` and a
real ``perdure worker`` on one SQLite database (both subprocesses, shared by the module)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from srv_helpers import TOKEN, ServerProcess, clean_env, start_server

import perdure
from perdure.errors import SerializationError

WAIT = 60.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``perdure server --api-token`` (no worker) and a ``perdure worker``, both on srv_app."""
    workdir = tmp_path_factory.mktemp("client")
    db_url = f"sqlite:///{workdir}/perdure.db"
    server = start_server(workdir, ["server", "--app", "srv_app:app", "--api-token", TOKEN], db_url)
    with (workdir / "worker.err").open("wb") as worker_err:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "perdure.cli", "worker", "srv_app:app"),
                *("--database-url", db_url, "--log-level", "warning"),
            ],
            env=clean_env(),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=worker_err,
        )
    try:
        yield server
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, (workdir / "worker.err").read_text()
        assert server.stop(signal.SIGINT) == 0, server.stderr()
    assert "Traceback" not in server.stderr()
    assert "Traceback" not in (workdir / "worker.err").read_text()


@pytest.fixture
async def client(served: ServerProcess) -> AsyncIterator[perdure.Client]:
    async with perdure.Client(served.url, token=TOKEN) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def readme() -> str:
    return (Path(__file__).resolve().parents[2] / "README.md").read_text()


# ---------------------------------------------------------------------- async


async def test_start_result_idempotency_and_get(client: perdure.Client) -> None:
    handle = await client.start("echo", {"a": 1})
    assert isinstance(handle, perdure.RunHandle) and handle.created
    assert await handle.result(timeout=WAIT) == {"data": {"a": 1}, "doubled": {"a": [1, 1]}}
    assert await handle.status() is perdure.RunStatus.COMPLETED

    key = unique("key")
    first = await client.start("echo", {"k": 1}, idempotency_key=key)
    again = await client.start("echo", {"k": 2}, idempotency_key=key)
    assert first.created and not again.created and again.run_id == first.run_id

    run = await client.get_run(handle.run_id)
    assert isinstance(run, perdure.RunInfo)
    assert (run.function_id, run.status, run.output["data"]) == ("echo", "completed", {"a": 1})
    assert run.event.data == {"a": 1} and run.created_at.tzinfo is not None
    assert [(s.id, s.status, s.output) for s in run.steps] == [
        ("double", "completed", {"a": [1, 1]})
    ]
    assert run.ended_at is not None and run.ended_at >= run.created_at
    assert (await client.get_run(handle.run_id, steps=False)).steps == []


async def test_send_starts_runs_and_tells_duplicates(client: perdure.Client) -> None:
    event_id = unique("ev")
    sent = await client.send_detailed([perdure.Event("test/ping", {"n": 7}, id=event_id)])
    assert isinstance(sent[0], perdure.SentEvent)
    assert (sent[0].id, sent[0].duplicate, len(sent[0].run_ids)) == (event_id, False, 1)
    assert await client.handle(sent[0].run_ids[0]).result(timeout=WAIT) == "pong 7"
    again = await client.send_detailed(perdure.Event("test/ping", {"n": 8}, id=event_id))
    assert (again[0].duplicate, again[0].run_ids) == (True, [])
    ids = await client.send([perdure.Event("test/ping", {"n": 9}), perdure.Event("other/x")])
    assert len(ids) == 2 and all(ids)
    assert await client.send([]) == []


async def test_list_runs_with_filters_and_cursor(client: perdure.Client) -> None:
    started = [await client.start("paged", {"i": i}) for i in range(3)]
    for h in started:
        await h.result(timeout=WAIT)
    page = await client.runs_page(function="paged", limit=2)
    assert [r.id for r in page.items] == [started[2].run_id, started[1].run_id]
    assert all(r.steps == [] and r.status == "completed" for r in page.items)
    assert page.next_cursor is not None
    rest = await client.runs_page(function="paged", cursor=page.next_cursor, limit=2)
    assert ([r.id for r in rest.items], rest.next_cursor) == ([started[0].run_id], None)
    listed = await client.list_runs(function="paged", before=page.next_cursor)
    assert [r.id for r in listed] == [started[0].run_id]
    completed = await client.list_runs(status=perdure.RunStatus.COMPLETED, limit=5000)
    assert {h.run_id for h in started} <= {r.id for r in completed}
    with pytest.raises(perdure.InvalidInputError, match="status"):
        await client.list_runs(status="sideways")


async def test_cancel_failure_rerun_and_replay(client: perdure.Client) -> None:
    napping = await client.start("nap")
    cancelled = await client.cancel(napping.run_id)
    assert cancelled.status is perdure.RunStatus.CANCELLED
    with pytest.raises(perdure.RunCancelledError) as cancel_info:
        await napping.result(timeout=WAIT)
    assert cancel_info.value.run_id == napping.run_id

    failing = await client.start("boom")
    with pytest.raises(perdure.RunFailedError) as failed:
        await failing.result(timeout=WAIT)
    assert failed.value.error_message == "boom on purpose"

    original = await client.start("echo", {"r": 1})
    await original.result(timeout=WAIT)
    rerun = await client.rerun(original.run_id)
    assert rerun.created and rerun.run_id != original.run_id
    assert (await rerun.result(timeout=WAIT))["data"] == {"r": 1}
    assert (await client.get_run(rerun.run_id)).rerun_of == original.run_id

    replay = await client.replay(original.run_id, from_step="double")
    assert (await replay.result(timeout=WAIT))["doubled"] == {"r": [1, 1]}
    replayed = await client.get_run(replay.run_id)
    assert (replayed.replay_of, replayed.replay_from_step) == (original.run_id, "double")

    still = await client.start("nap")
    with pytest.raises(perdure.RunNotEndedError):
        await client.replay(still.run_id, from_step="nap")
    with pytest.raises(perdure.InvalidInputError, match="no step 'nope'"):
        await client.replay(original.run_id, from_step="nope")
    await client.cancel(still.run_id)
    with pytest.raises(TimeoutError):
        await (await client.start("nap")).result(timeout=0.2)


async def test_schedules(client: perdure.Client) -> None:
    sid = unique("sched")
    made = await client.schedules.create(
        sid, "echo", "0 9 * * *", tz="Europe/Paris", data={"to": "ops"}, catchup_window="2h"
    )
    assert isinstance(made, perdure.ScheduleInfo)
    assert (made.id, made.function_id, made.tz, made.data) == (
        sid,
        "echo",
        "Europe/Paris",
        {"to": "ops"},
    )
    assert made.catchup_window == 7200 and not made.paused and made.next_tick is not None
    assert (await client.schedules.get(sid)) == made
    assert sid in {s.id for s in await client.schedules.list(function="echo")}
    with pytest.raises(perdure.ScheduleExistsError):
        await client.schedules.create(sid, "echo", "0 9 * * *")
    with pytest.raises(perdure.InvalidInputError):
        await client.schedules.create(unique("bad"), "echo", "not a cron")
    with pytest.raises(perdure.FunctionNotFoundError):
        await client.schedules.create(unique("nofn"), "no-such-function", "0 9 * * *")
    paused = await client.schedules.pause(sid)
    assert paused.paused and paused.next_tick is None
    run = await client.schedules.trigger(sid)
    assert (await run.result(timeout=WAIT))["data"] == {"to": "ops"}
    assert (await client.get_run(run.run_id)).event.schedule is not None
    assert not (await client.schedules.resume(sid)).paused
    await client.schedules.delete(sid)
    with pytest.raises(perdure.ScheduleNotFoundError):
        await client.schedules.get(sid)
    with pytest.raises(perdure.ScheduleNotFoundError):
        await client.schedules.delete(sid)


async def test_typed_errors(served: ServerProcess, client: perdure.Client) -> None:
    with pytest.raises(perdure.RunNotFoundError, match="no run"):
        await client.get_run("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with pytest.raises(perdure.RunNotFoundError):
        await client.cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    for odd in ("", "..", "a/b", "a\x00"):
        with pytest.raises(perdure.RunNotFoundError):
            await client.rerun(odd)
    with pytest.raises(perdure.ScheduleNotFoundError):
        await client.schedules.pause("a/b")
    with pytest.raises(perdure.FunctionNotFoundError):
        await client.start("no-such-function")
    with pytest.raises(perdure.InvalidInputError, match="idempotency_key"):
        await client.start("echo", idempotency_key="")
    with pytest.raises(perdure.PayloadTooLargeError) as too_large:
        await client.start("echo", {"blob": "x" * 5_000_000})
    assert too_large.value.limit == 4 * 1024 * 1024 and too_large.value.size > 5_000_000
    async with perdure.Client(served.url, token="wrong-token") as wrong:
        with pytest.raises(perdure.UnauthorizedError, match="not valid"):
            await wrong.start("echo")
    async with perdure.Client(served.url) as anonymous:
        with pytest.raises(perdure.UnauthorizedError, match="needs an API token"):
            await anonymous.list_runs()
    async with perdure.Client("http://127.0.0.1:9", timeout=5) as nowhere:
        with pytest.raises(perdure.RemoteError, match="cannot reach"):
            await nowhere.get_run("x")


async def test_the_readme_example_runs(
    served: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = re.search(r"## Remote client.*?```python\n(.*?)```", readme(), re.S)
    assert code is not None, "the README has no remote client example"
    source = code.group(1).replace(
        '"http://perdure.internal:8288", "s3cret"', repr((served.url, TOKEN))[1:-1]
    )
    scope: dict[str, Any] = {}
    exec(compile(source.replace('"fulfil-order"', '"echo"'), "README.md", "exec"), scope)
    await scope["checkout"](unique("A"))
    await asyncio.to_thread(scope["checkout_sync"], "B1")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("{'data': {'order_id': 'A-") and out[1].endswith("}} completed")


# ---------------------------------------------------------------------- sync


def test_sync_twins(served: ServerProcess) -> None:
    with perdure.Client(served.url, token=TOKEN) as client:
        handle = client.start_sync("echo", {"s": 1}, idempotency_key=unique("sync"))
        assert handle.result_sync(timeout=WAIT)["data"] == {"s": 1}
        assert client.get_run_sync(handle.run_id).status is perdure.RunStatus.COMPLETED
        assert handle.run_id in {r.id for r in client.list_runs_sync(function="echo")}
        assert client.runs_page_sync(function="echo", limit=1).next_cursor is not None

        sent = client.send_detailed_sync([perdure.Event("test/ping", {"n": 3})])
        assert client.handle(sent[0].run_ids[0]).result_sync(timeout=WAIT) == "pong 3"
        assert len(client.send_sync(perdure.Event("other/y"))) == 1

        rerun = client.rerun_sync(handle.run_id)
        assert rerun.result_sync(timeout=WAIT)["data"] == {"s": 1}
        replay = client.replay_sync(handle.run_id, from_step="double")
        assert replay.result_sync(timeout=WAIT)["doubled"] == {"s": [1, 1]}
        napping = client.start_sync("nap")
        assert client.cancel_sync(napping.run_id).status is perdure.RunStatus.CANCELLED
        with pytest.raises(perdure.RunCancelledError):
            napping.result_sync(timeout=WAIT)

        sid = unique("ssched")
        assert client.schedules.create_sync(sid, "echo", "*/5 * * * *").id == sid
        assert client.schedules.get_sync(sid).cron == "*/5 * * * *"
        assert sid in {s.id for s in client.schedules.list_sync()}
        assert client.schedules.pause_sync(sid).paused
        assert not client.schedules.resume_sync(sid).paused
        assert client.schedules.trigger_sync(sid).result_sync(timeout=WAIT)["data"] == {}
        client.schedules.delete_sync(sid)
        with pytest.raises(perdure.ScheduleNotFoundError):
            client.schedules.get_sync(sid)
        with pytest.raises(perdure.RunNotFoundError):
            client.get_run_sync("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    with (
        perdure.Client(served.url, token="wrong") as wrong,
        pytest.raises(perdure.UnauthorizedError),
    ):
        wrong.list_runs_sync()


def test_client_rejects_bad_arguments_before_any_request() -> None:
    with pytest.raises(perdure.InvalidInputError, match="http"):
        perdure.Client("localhost:8288")
    with pytest.raises(perdure.InvalidInputError, match="token"):
        perdure.Client("http://127.0.0.1:8288", token=" ")
    client = perdure.Client("http://127.0.0.1:9")
    with pytest.raises(perdure.InvalidInputError, match="Event"):
        client.send_sync([{"name": "x"}])  # type: ignore[list-item]
    with pytest.raises(SerializationError):
        client.start_sync("echo", {"x": object()})
    with pytest.raises(perdure.FunctionNotFoundError):
        client.start_sync(print)
    client.close_sync()
