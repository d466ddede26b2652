"""schemathesis against a real ``perdure dev`` process: every operation of ``/openapi.json``,
with generated valid and invalid requests; no response may be a server error or disagree with
the document (status, content type, headers, schema)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance
from srv_helpers import ServerProcess, start_server

from perdure.server import openapi

# the operations the document must hold, each fuzzed by its own test item below (checked, so
# that none is silently left out of the document)
OPERATIONS = {
    "GET /health",
    "GET /openapi.json",
    "GET /metrics",
    "POST /api/v1/events",
    "POST /api/v1/functions",
    "GET /api/v1/events",
    "GET /api/v1/functions",
    "GET /api/v1/functions/{function_id}",
    "GET /api/v1/functions/{function_id}/stats",
    "GET /api/v1/events/{event_id}",
    "POST /api/v1/functions/{function_id}/runs",
    "POST /api/v1/functions/{function_id}/pause",
    "POST /api/v1/functions/{function_id}/resume",
    "GET /api/v1/workers",
    "GET /api/v1/keys",
    "POST /api/v1/keys",
    "DELETE /api/v1/keys/{key_id}",
    "GET /api/v1/audit",
    "POST /auth/login",
    "POST /auth/logout",
    "GET /auth/session",
    "GET /api/v1/runs",
    "GET /api/v1/runs/stream",
    "POST /api/v1/runs/bulk/cancel",
    "POST /api/v1/runs/bulk/rerun",
    "GET /api/v1/runs/{run_id}",
    "POST /api/v1/runs/{run_id}/cancel",
    "POST /api/v1/runs/{run_id}/rerun",
    "POST /api/v1/runs/{run_id}/replay",
    "GET /api/v1/schedules",
    "GET /api/v1/apps",
    "POST /api/v1/apps/{app_id}/resync",
    "POST /api/v1/schedules",
    "GET /api/v1/schedules/{schedule_id}",
    "DELETE /api/v1/schedules/{schedule_id}",
    "POST /api/v1/schedules/{schedule_id}/pause",
    "POST /api/v1/schedules/{schedule_id}/resume",
    "POST /api/v1/schedules/{schedule_id}/trigger",
}
# A schedule's cron expression and time zone are checked by the cron parser (ordered ranges,
# an expression that can never fire, the server's tz database), which JSON Schema cannot
# state: a schema-valid schedule may be refused with 400 invalid_cron. An HTTP function's
# triggers (event patterns, CEL expressions, crons) and URL are checked by the same parsers as
# /fn/register. Every other check runs.
NOT_IN_SCHEMA = {"POST /api/v1/schedules", "POST /api/v1/functions"}
# The live stream never ends by itself: tests/server/test_server_runs_live.py tests it.
ENDLESS = "/api/v1/runs/stream"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A dev server of its own (the generated requests start runs and send events)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    server = start_server(
        workdir, ["dev", "--app", "srv_app:app"], f"sqlite:///{workdir}/perdure.db"
    )
    # a few runs and events, so that the lists and look-ups have something to show
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for i in range(3):
            assert c.post("/api/v1/functions/echo/runs", json={"data": {"i": i}}).status_code
            assert c.post("/api/v1/events", json={"name": "test/ping", "data": {"n": i}})
    yield server
    assert server.stop() == 0, server.stderr()
    errors = [line for line in server.stderr().splitlines() if "Traceback" in line]
    assert not errors, server.stderr()


DOCUMENT = openapi.document(auth=False)
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_server_serves_this_document(fuzzed: ServerProcess) -> None:
    assert httpx.get(f"{fuzzed.url}/openapi.json").json() == DOCUMENT


@schema.exclude(path=ENDLESS).parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_conforms(case: Any, fuzzed: ServerProcess) -> None:
    excluded = [positive_data_acceptance] if case.operation.label in NOT_IN_SCHEMA else []
    case.call_and_validate(base_url=fuzzed.url, timeout=30, excluded_checks=excluded)


def test_every_operation_is_fuzzed() -> None:
    # One test item per operation of the document (the parametrization above): whatever the
    # process that runs each item (pytest-xdist), none is left out.
    labels = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation the document cannot describe
        labels.add(result.ok().label)
    assert labels == OPERATIONS
