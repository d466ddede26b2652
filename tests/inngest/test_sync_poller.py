"""``perdure dev -u``'s poller: the sync PUT it sends, when it re-sends, what counts as failed."""

from __future__ import annotations

import json

import httpx

from perdure.inngest.sync import AppPoller

OK, BAD, DOWN = "http://ok/api", "http://bad/api", "http://down/api"


def transport(seen: list[tuple[str, str, dict[str, str], bytes]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url), dict(request.headers), request.content))
        if request.url.host == "down":
            raise httpx.ConnectError("refused", request=request)
        if request.url.host == "bad":  # Python apps answer 200 with the server's error body
            return httpx.Response(200, json={"error": "functions must be an array", "status": 400})
        return httpx.Response(200, json={"ok": True, "modified": True})

    return httpx.MockTransport(handle)


async def test_the_ping_is_the_dev_server_sync_put() -> None:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    async with httpx.AsyncClient(transport=transport(seen)) as http:
        poller = AppPoller([OK, OK, BAD, DOWN], http=http)
        await poller.tick()
    assert sorted(u for _, u, _, _ in seen) == [BAD, DOWN, OK]  # each URL once
    method, _, headers, body = next(s for s in seen if s[1] == OK)
    assert method == "PUT" and json.loads(body) == {"url": OK}
    assert headers["x-inngest-server-kind"] == "dev"
    assert headers["content-type"] == "application/json"
    states = poller.states
    assert states[OK].ok and states[OK].error is None
    assert not states[BAD].ok and "functions must be an array" in (states[BAD].error or "")
    assert not states[DOWN].ok and (states[DOWN].error or "").startswith("unreachable")


async def test_no_poll_only_retries_the_failed_apps() -> None:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []
    async with httpx.AsyncClient(transport=transport(seen)) as http:
        polling = AppPoller([OK, DOWN], http=http)
        once = AppPoller([OK, DOWN], http=http, poll=False)
        for p in (polling, once):
            await p.tick()
            await p.tick()
    hosts = [httpx.URL(u).host for _, u, _, _ in seen]
    assert hosts.count("ok") == 3 and hosts.count("down") == 4  # poll: 2+2; no poll: 1+2
