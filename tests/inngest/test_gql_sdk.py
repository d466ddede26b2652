"""``POST /v0/gql``, ``GET /v1/events/{id}/runs`` and ``POST /api/v1/functions`` with runs of
the real Inngest Python SDK, on SQLite and PostgreSQL: the queries the SDKs' test helpers send
(run status and output, trigger payloads, trace spans and their outputs, an event's runs)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from life_app import APP_ID, Life, life

from perdure import Event
from perdure.inngest.gql import GqlError, parse

RUN_QUERY = """
query RunAndTrigger($id: String!) {
  run(runID: $id) { status output }
  runTrigger(runID: $id) { payloads }
}
"""
SPANS_QUERY = """
query Spans($id: String!) {
  run(runID: $id) {
    trace(preview: true) { name status outputID childrenSpans { name status stepOp outputID } }
  }
}
"""
OUTPUT_QUERY = """
query Out($out: String!) {
  runTraceSpanOutputByID(outputID: $out) { data error { message name stack } }
}
"""
EVENT_QUERY = """
query Runs($event: ID!) { event(query: {eventId: $event}) { functionRuns { id } } }
"""


async def gql(h: Life, query: str, **variables: Any) -> dict[str, Any]:
    res = await h.http.post("/v0/gql", json={"query": query, "variables": variables})
    body: dict[str, Any] = res.json()
    return body


async def test_runs_spans_outputs_and_events_as_the_sdk_helpers_read_them(db_url: str) -> None:
    async with life(db_url) as h:
        (sent,) = await h.app.send_detailed([Event(name="life/two", data={"k": 1})])
        (run_id,) = sent.run_ids
        await h.ended(run_id)

        got = await gql(h, RUN_QUERY, id=run_id)
        assert "errors" not in got, got
        assert got["data"]["run"]["status"] == "COMPLETED"
        assert orjson.loads(got["data"]["run"]["output"]) == {"first": [{"foo": 1}]}
        (payload,) = got["data"]["runTrigger"]["payloads"]
        event = orjson.loads(payload)
        assert event["name"] == "life/two" and event["data"] == {"k": 1}
        assert event["id"] == sent.id

        spans = (await gql(h, SPANS_QUERY, id=run_id))["data"]["run"]["trace"]
        assert spans["status"] == "COMPLETED"
        children = spans["childrenSpans"]
        assert [c["name"] for c in children] == ["a", "a", "b"]
        assert [c["status"] for c in children] == ["COMPLETED", "COMPLETED", "FAILED"]
        first = await gql(h, OUTPUT_QUERY, out=children[0]["outputID"])
        assert first["data"]["runTraceSpanOutputByID"] == {"data": '[{"foo":1}]', "error": None}
        failed = (await gql(h, OUTPUT_QUERY, out=children[2]["outputID"]))["data"]
        assert failed["runTraceSpanOutputByID"]["data"] is None
        error = failed["runTraceSpanOutputByID"]["error"]
        assert error["name"] == "ValueError" and error["message"] == "b broke"
        whole = await gql(h, OUTPUT_QUERY, out=spans["outputID"])
        assert orjson.loads(whole["data"]["runTraceSpanOutputByID"]["data"]) == {
            "first": [{"foo": 1}]
        }

        runs = await gql(h, EVENT_QUERY, event=sent.id)
        assert runs == {"data": {"event": {"functionRuns": [{"id": run_id}]}}}
        rest = await h.http.get(f"/v1/events/{sent.id}/runs")
        assert rest.status_code == 200
        (row,) = rest.json()["data"]
        assert row["run_id"] == run_id and row["status"] == "Completed"
        assert row["output"] == {"first": [{"foo": 1}]}
        assert (await h.http.get("/v1/events/nope/runs")).status_code == 404


async def test_a_failed_run_s_output_is_the_sdk_error_body(db_url: str) -> None:
    async with life(db_url) as h:
        run_id = await h.trigger("life/fail")
        await h.ended(run_id)
        run = (await gql(h, RUN_QUERY, id=run_id))["data"]["run"]
        assert run["status"] == "FAILED"
        body = orjson.loads(run["output"])
        assert body["name"] == "MyError" and body["message"] == "intentional failure"
        assert body["code"] == "unknown"


async def test_unknown_ids_are_graphql_errors_not_null(db_url: str) -> None:
    async with life(db_url) as h:
        got = await gql(h, RUN_QUERY, id="01HZZZZZZZZZZZZZZZZZZZZZZZ")
        assert got["data"] == {"run": None, "runTrigger": None}
        assert [e["path"] for e in got["errors"]] == [["run"], ["runTrigger"]]
        assert "run not found" in got["errors"][0]["message"]
        missing = await gql(h, EVENT_QUERY, event="nope")
        assert missing["data"] == {"event": None} and missing["errors"]
        out = await gql(h, OUTPUT_QUERY, out="step:nope:x")
        assert out["data"]["runTraceSpanOutputByID"] is None and out["errors"]
        res = await h.http.post("/v0/gql", json={"query": "{ run(runID: ) }"})
        assert res.status_code == 422 and "Syntax Error" in res.json()["errors"][0]["message"]
        unknown = await h.http.post("/v0/gql", json={"query": "{ nope }"})
        assert unknown.json() == {
            "errors": [{"message": 'Cannot query field "nope" on type "Query".'}]
        }


async def test_cancel_run_mutation_cancels_an_sdk_run(db_url: str) -> None:
    async with life(db_url) as h:
        run_id = await h.trigger("life/slow", {"id": "m"})
        await asyncio.to_thread(h.seen.slow_started.wait, 30)
        got = await gql(
            h, "mutation Stop($id: ULID!) { cancelRun(runID: $id) { id status } }", id=run_id
        )
        assert got == {"data": {"cancelRun": {"id": run_id, "status": "CANCELLED"}}}
        assert str((await h.ended(run_id)).status) == "cancelled"


async def test_post_api_v1_functions_registers_an_http_function(db_url: str) -> None:
    async with life(db_url, synced=False) as h:
        fid = f"{APP_ID}-fine"
        body = {"id": fid, "name": "fine", "url": h.serve_url, "triggers": [{"event": "life/http"}]}
        res = await h.http.post("/api/v1/functions", json=body)
        assert res.status_code == 201, res.text
        assert [f["slug"] for f in res.json()["functions"]] == [fid]
        run_id = await h.trigger("life/http", {"n": 5})
        info = await h.ended(run_id)
        assert str(info.status) == "completed" and info.output == {"n": 5, "ok": True}
        bad = await h.http.post("/api/v1/functions", json={"name": "x", "triggers": []})
        assert bad.status_code == 400 and "url" in bad.json()["error"]["message"]


def test_the_parser_reads_aliases_literals_and_fragments() -> None:
    op = parse(
        'query Q($a: [String!]! = ["x"]) { r: run(runID: "1", n: -2.5, b: true, o: {k: [$a]})'
        " { ... on FunctionRunV2 { status } } }"
    )
    (f,) = op.selection
    assert (f.key, f.name) == ("r", "run")
    assert f.args == {"runID": "1", "n": -2.5, "b": True, "o": {"k": [["x"]]}}
    assert [s.name for s in f.selection] == ["status"]
    for bad in ("{ run(", "fragment F on X { a }", "{ a @include(if: true) }", "", "{ }"):
        try:
            parse(bad)
        except GqlError:
            continue
        raise AssertionError(f"{bad!r} parsed")


async def test_post_functions_refuses_fields_of_the_wrong_type(db_url: str) -> None:
    async with life(db_url) as h:
        good = {"name": "x", "url": "http://127.0.0.1:9/api/inngest"}
        for bad in (
            {"triggers": None},
            {"triggers": ["e"]},
            {"id": None},
            {"id": ""},
            {"id": "a b"},
            {"name": ""},
            {"retries": "3"},
            {"retries": True},
            {"app": 7},
            {"url": "ftp://x"},
        ):
            res = await h.http.post("/api/v1/functions", json={**good, **bad})
            assert res.status_code == 400, (bad, res.text)
            assert res.json()["error"]["code"] == "invalid_input", res.text
        assert (await h.http.post("/api/v1/functions", json=good)).status_code == 201
