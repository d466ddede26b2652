"""The Dockerfile and compose.yaml, checked without a Docker engine: both files are parsed, the
image's exact ENTRYPOINT + CMD runs here with the environment compose gives the server (on a
free port, against a real database), and the image's HEALTHCHECK command must fail before the
server listens and pass once it serves. ``docker build`` runs only where an engine answers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
BIN = Path(sys.executable).parent
DEADLINE = 60.0
TOKEN = "deploy-test-token"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def only(instruction: str) -> str:
    """The arguments of an instruction that appears exactly once."""
    found = [args for word, args in dockerfile_instructions() if word == instruction]
    assert len(found) == 1, f"{instruction}: {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """A JSON (exec form) argument list: the shell form would run under /bin/sh -c."""
    value = json.loads(args)
    assert isinstance(value, list)
    assert all(isinstance(v, str) for v in value)
    return value


def healthcheck_command() -> list[str]:
    args = only("HEALTHCHECK")
    flags, sep, cmd = args.partition("CMD ")
    assert sep, f"HEALTHCHECK without CMD: {args}"
    assert all(f.startswith("--") for f in flags.split()), flags
    return exec_form(cmd)


_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        got = env.get(name, "")
        if got:
            return got
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VAR.sub(sub, value)


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def local(argv: list[str], port: int) -> list[str]:
    """The image's command line as it runs here: ``perdure`` and ``python`` from this venv, the
    port 8288 (in arguments and URLs) swapped for ``port``."""
    tools = {"perdure": str(BIN / "perdure"), "python": sys.executable}
    first = tools.get(argv[0], argv[0])
    return [first] + [a.replace("8288", str(port)) for a in argv[1:]]


def test_dockerfile_is_consistent() -> None:
    base = only("FROM")
    assert base.startswith("python:3.11-slim"), base
    user = only("USER").split(":")[0]
    assert user not in ("", "root", "0"), f"the image runs as {user!r}"
    assert only("EXPOSE").split() == ["8288"]
    entry = exec_form(only("ENTRYPOINT"))
    cmd = exec_form(only("CMD"))
    argv = entry + cmd
    assert argv[:2] == ["perdure", "server"], argv
    assert argv[argv.index("--port") + 1] == "8288"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    check = healthcheck_command()
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(check))
    assert urls == ["http://127.0.0.1:8288/health"], urls
    # Everything the Dockerfile copies survives .dockerignore.
    ignore = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    kept = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    for word, args in dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert source in kept, f"COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def test_compose_file() -> None:
    data = compose()
    services = data["services"]
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in pg["healthcheck"]["test"]
    volume = pg["volumes"][0].split(":")[0]
    assert volume in data["volumes"]
    server = services["server"]
    assert server["build"] == "."
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["ports"][0].endswith(":8288")
    url = interpolate(server["environment"]["PERDURE_DATABASE_URL"], {})
    assert url == "postgresql://perdure:perdure@postgres:5432/perdure"
    # The token has no default: compose refuses to start the server without one.
    with pytest.raises(KeyError, match="PERDURE_API_TOKEN"):
        interpolate(server["environment"]["PERDURE_API_TOKEN"], {})
    worker = services["worker"]
    assert worker["image"] == server["image"]
    assert worker["command"][0] == "worker"
    assert worker["healthcheck"] == {"disable": True}  # the image's check targets the server


@pytest.fixture
def server_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment compose gives the server (with a token set, as compose demands), its
    database URL pointed at this test's database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERDURE_", "INNGEST_"))}
    given = {"PERDURE_API_TOKEN": TOKEN}
    env = {
        k: interpolate(str(v), given)
        for k, v in compose()["services"]["server"]["environment"].items()
    }
    env["PERDURE_DATABASE_URL"] = db_url
    base.update(env)
    base["HOME"] = str(tmp_path)
    return base


@pytest.fixture
def image_server(server_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """The healthcheck (already seen failing) and the image's command, started on a free port."""
    port = free_port()
    check = local(healthcheck_command(), port)
    before = subprocess.run(check, env=server_env, capture_output=True, timeout=30)
    assert before.returncode != 0, "the healthcheck passed with no server listening"
    argv = local(exec_form(only("ENTRYPOINT")) + exec_form(only("CMD")), port)
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield port, check
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{out}"
        assert "keys required" in out, out


def test_image_command_serves_and_passes_its_healthcheck(
    image_server: tuple[int, list[str]], server_env: dict[str, str]
) -> None:
    port, check = image_server
    deadline = time.monotonic() + DEADLINE
    while True:
        result = subprocess.run(check, env=server_env, capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            break
        assert time.monotonic() < deadline, f"healthcheck still failing: {result.stderr}"
        time.sleep(0.2)
    # Reached under compose's service name, as another container would: the token is required,
    # and with it any Host is served.
    base = f"http://127.0.0.1:{port}"
    headers = {"Host": f"server:{port}"}
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/api/v1/runs", headers=headers).status_code == 401
        auth = {**headers, "Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/v1/runs", headers=auth).status_code == 200


def _docker_engine() -> str | None:
    """Why ``docker build`` cannot run here (None if it can)."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return "no Docker engine answers (docker info failed)"
    return None


@pytest.mark.slow
def test_docker_build() -> None:
    problem = _docker_engine()
    if problem is not None:
        pytest.skip(f"docker build skipped: {problem}")
    tag = "perdure-test:deploy"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=900)
    inspect = subprocess.run(
        ["docker", "image", "inspect", tag, "--format", "{{json .Config}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    config = json.loads(inspect.stdout)
    assert config["User"] == only("USER")
    assert config["Entrypoint"] + config["Cmd"] == exec_form(only("ENTRYPOINT")) + exec_form(
        only("CMD")
    )
    assert "8288/tcp" in config["ExposedPorts"]
