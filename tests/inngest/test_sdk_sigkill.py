"""SIGKILL of the perdure server in the middle of a run of an Inngest-SDK function (the real
Python SDK on FastAPI), on SQLite and PostgreSQL: after a restart on the same database the run
finishes with the right output, and no step whose result was stored runs again.

The function has three steps; the second blocks in the app until the test lets it go. The
server (``perdure dev``, lease 2 s) is killed once the app says that the second step's body is
running: the first step's result is stored by then (the driver makes a step's result durable
before the call that runs the next one). What is guaranteed, and asserted exactly:

- ``first`` ran once (its result was stored before the kill);
- ``second`` ran twice: its first execution's answer went to a dead server, so the restarted
  server runs it again (at-least-once for the step in flight);
- ``third`` ran once, after the restart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from dev_world import DevServer
from kinds_app import FAST_APP, Seen, fastapi_app
from sdk_apps import Served, free_port

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0  # seconds: the restarted server takes the run over after this long


def hashed(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


def test_a_run_survives_a_sigkill_of_the_server_mid_step(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    seen = Seen()
    with Served(fastapi_app(seen, f"http://127.0.0.1:{port}")) as served:
        dev = DevServer(tmp_path, port, db_url, [f"{served.url}/api/inngest"], lease=LEASE)
        try:
            dev.start()
            dev.synced(FAST_APP, 4)
            run_id = dev.trigger("kinds/durable")
            assert seen.in_flight.wait(60), "the second step did not start"
            stored = dev.run(run_id)
            assert stored is not None and stored["status"] == "running"
            assert {s["id"]: s["status"] for s in stored["steps"]} == {hashed("first"): "completed"}
            dev.kill()
            seen.release.set()  # the body returns now; its answer finds no server
            assert seen.bodies == ["first", "second"]

            dev.start()  # on the same database
            run = dev.ended(run_id)
            assert run["status"] == "completed", run["error"]
            assert run["output"] == [1, {"two": 2}, "three"]
            assert seen.bodies == ["first", "second", "second", "third"]
            steps = {s["id"]: s for s in run["steps"]}
            assert {k: s["status"] for k, s in steps.items()} == {
                hashed("first"): "completed",
                hashed("second"): "completed",
                hashed("third"): "completed",
            }
            assert steps[hashed("second")]["output"] == {"two": 2}
            # The restarted server knew no step by name: the names come from the database.
            assert {k: s.get("name") for k, s in steps.items()} == {
                hashed(name): name for name in ("first", "second", "third")
            }
        finally:
            dev.close()
            seen.close()
