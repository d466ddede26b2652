"""App autodiscovery for ``perdure dev``: find Inngest SDK apps served on local ports.

As the Inngest dev server does (unless ``--no-discovery``): while no Inngest app is synced,
every poll interval probes 127.0.0.1 on the ports dev frameworks use (:data:`PORTS`, and
``$PORT`` when set), and on each port that accepts a connection ``GET``\\ s the usual serve
paths (:data:`PATHS`). An answer with an ``X-Inngest-SDK`` header is an SDK's serve URL: it is
added to the URLs the poller syncs. perdure's own port is never probed. Probing is cheap: a
TCP connect per port (refused at once on a closed one), a few GETs per open port, short
timeouts; it stops as soon as any app is synced.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

import httpx

__all__ = ["PATHS", "PORTS", "candidate_ports", "discover", "open_ports"]

#: The ports probed (the Inngest dev server's list).
PORTS: tuple[int, ...] = (
    80,
    443,
    *range(3000, 3011),
    4321,
    5000,
    5173,
    8000,
    8080,
    8081,
    8888,
    *range(8910, 8916),
    8787,
)
#: The serve paths asked on each open port.
PATHS = ("/api/inngest", "/x/inngest", "/.netlify/functions/inngest", "/.redwood/functions/inngest")
CONNECT_TIMEOUT = 0.5
GET_TIMEOUT = 2.0


def candidate_ports(env_port: str | None, own_port: int | None) -> list[int]:
    """:data:`PORTS` and ``$PORT`` (when it is a port number), without perdure's own port."""
    ports = list(PORTS)
    if env_port is not None and env_port.strip().isdigit():
        extra = int(env_port.strip())
        if 0 < extra < 65536 and extra not in ports:
            ports.append(extra)
    return [p for p in ports if p != own_port]


async def _is_open(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def open_ports(host: str, ports: Iterable[int]) -> list[int]:
    """The ports of ``host`` that accept a TCP connection."""
    wanted = list(ports)
    found = await asyncio.gather(*(_is_open(host, p) for p in wanted))
    return [p for p, ok in zip(wanted, found, strict=True) if ok]


async def discover(
    http: httpx.AsyncClient, ports: Sequence[int], host: str = "127.0.0.1"
) -> list[str]:
    """The serve URLs of Inngest SDK apps found on ``host``'s ``ports``."""

    async def probe(url: str) -> str | None:
        try:
            res = await http.get(url, timeout=GET_TIMEOUT, follow_redirects=False)
        except httpx.HTTPError:
            return None
        return url if "x-inngest-sdk" in res.headers else None

    urls: list[str] = []
    for port in await open_ports(host, ports):
        scheme = "https" if port == 443 else "http"
        shown = "" if (scheme, port) in (("http", 80), ("https", 443)) else f":{port}"
        candidates = [f"{scheme}://{host}{shown}{path}" for path in PATHS]
        for found in await asyncio.gather(*(probe(u) for u in candidates)):
            if found is not None:
                urls.append(found)
                break  # one serve URL per port
    return urls
