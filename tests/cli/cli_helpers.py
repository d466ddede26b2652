"""Run the ``perdure`` command line in subprocesses, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Populated:
    """A database the CLI tests read, and the runs in it."""

    url: str
    completed: str
    sleeping: str
    queued: list[str]
    to_cancel: str


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PERDURE_* variables (plus ``extra``), with this folder on the
    Python path for the test apps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def perdure(
    *args: str,
    cwd: Path | None = None,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m perdure.cli ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "perdure.cli", *args],
        cwd=cwd,
        input=input,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


# Imports perdure once, then forks one child process per command line: each child runs the
# real entry point (``perdure.cli.main``) with its own stdout, stderr and exit status, exactly
# as ``python -m perdure.cli`` would, without paying the interpreter start and imports each time.
_FORKING_RUNNER = r"""
import json, os, sys, tempfile, traceback
import perdure.cli

results = []
for argv in json.loads(sys.argv[1]):
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        code = 0
        try:
            perdure.cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    results.append({"argv": argv, "status": os.waitstatus_to_exitcode(status),
                    "stdout": out.read().decode(), "stderr": err.read().decode()})
print(json.dumps(results))
"""


def perdure_many(
    argvs: Sequence[Sequence[str]], cwd: Path | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Several independent command lines, each in its own (forked) process."""
    runner = subprocess.run(
        [sys.executable, "-c", _FORKING_RUNNER, json.dumps([list(a) for a in argvs])],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert runner.returncode == 0, runner.stderr
    return [
        subprocess.CompletedProcess(["perdure", *r["argv"]], r["status"], r["stdout"], r["stderr"])
        for r in json.loads(runner.stdout)
    ]


def assert_one_line_error(r: subprocess.CompletedProcess[str], status: int) -> str:
    """The command failed with ``status`` and one ``error: ...`` line, no traceback."""
    assert r.returncode == status, (r.args, r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


class Background:
    """A long-running ``python -m perdure.cli ARGS`` (dev, server, worker), its output in files."""

    def __init__(self, workdir: Path, args: Sequence[str], env: dict[str, str]) -> None:
        self.out = workdir / "perdure.out"
        self.err = workdir / "perdure.err"
        with self.out.open("wb") as fout, self.err.open("wb") as ferr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perdure.cli", *args],
                cwd=workdir,
                env=env,
                stdout=fout,
                stderr=ferr,
            )

    def stdout(self) -> str:
        """What it printed so far."""
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        """What it logged so far."""
        return self.err.read_text(errors="replace")

    def wait_for(self, text: str, *, stream: str = "stdout", timeout: float = 60) -> str:
        """Wait until ``text`` appears on ``stream``; return everything printed there."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.stdout() if stream == "stdout" else self.stderr()
            if text in seen:
                return seen
            assert self.proc.poll() is None, (self.proc.returncode, self.stdout(), self.stderr())
            assert time.monotonic() < deadline, (text, self.stdout(), self.stderr())
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGINT, then its exit status (it must stop within 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is the failure
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the process did not stop within 30 s") from None
