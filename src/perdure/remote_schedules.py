"""The schedules of a remote perdure server (``perdure.Client(...).schedules``), over
``/api/v1/schedules``: the methods of :class:`~perdure.schedules.Schedules`, with the same
arguments, results and errors, and their ``_sync`` twins."""

from __future__ import annotations

import builtins
import re
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import quote

from perdure.client import HandleSource, RunHandle
from perdure.engine.durations import to_seconds
from perdure.errors import InvalidInputError, ScheduleNotFoundError
from perdure.functions import function_id_of
from perdure.query import Page
from perdure.remote_views import parse_schedule, parse_schedules_page
from perdure.schedules import DEFAULT_WINDOW, SCHEDULE_ID_PATTERN, ScheduleSyncTwins
from perdure.types import ScheduleInfo

PAGE = 500
"""The page size :meth:`RemoteSchedules.list` reads with (the API's largest)."""


class ApiCaller(HandleSource, Protocol):
    """What the schedules need from the remote client: its API calls."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API call's decoded answer, or the error it stands for."""
        ...


def _path(schedule_id: str, action: str = "") -> str:
    if not isinstance(schedule_id, str) or not re.match(SCHEDULE_ID_PATTERN, schedule_id):
        raise ScheduleNotFoundError(f"no schedule with id {schedule_id!r}")
    return f"/api/v1/schedules/{quote(schedule_id, safe='')}{action}"


class RemoteSchedules(ScheduleSyncTwins):
    """The schedules of the server a :class:`perdure.Client` talks to."""

    def __init__(self, client: ApiCaller) -> None:
        self._client = client
        self._bridge = client.bridge

    async def create(
        self,
        id: str,
        function: Any,
        cron: str,
        *,
        tz: str = "UTC",
        data: dict[str, Any] | None = None,
        overlap: str = "skip",
        catchup: str = "latest",
        catchup_window: timedelta | float | str = DEFAULT_WINDOW,
        paused: bool = False,
    ) -> ScheduleInfo:
        """Create the schedule ``id`` (see :meth:`perdure.schedules.Schedules.create`: the
        same arguments and errors)."""
        if not isinstance(id, str):
            raise InvalidInputError(f"schedule id {id!r} must be a string")
        body = {
            "id": id,
            "function_id": function_id_of(function),
            "cron": cron,
            "tz": tz,
            "data": {} if data is None else data,
            "overlap": overlap,
            "catchup": catchup,
            "catchup_window": to_seconds(catchup_window),
            "paused": paused,
        }
        return parse_schedule(await self._client.request("POST", "/api/v1/schedules", body=body))

    async def get(self, id: str) -> ScheduleInfo:
        """The schedule ``id`` (:class:`~perdure.errors.ScheduleNotFoundError` if none)."""
        return parse_schedule(await self._client.request("GET", _path(id)))

    async def page(
        self, *, function: Any = None, after: str | None = None, limit: int = 100
    ) -> Page[ScheduleInfo]:
        """A page of schedules by id: only those of ``function`` when given; ``after`` is
        the cursor (the ``next_cursor`` of the previous page); ``limit`` from 1 to 500."""
        params = {
            "function_id": None if function is None else function_id_of(function),
            "cursor": after,
            "limit": max(1, min(int(limit), PAGE)),
        }
        answer = await self._client.request("GET", "/api/v1/schedules", params=params)
        return parse_schedules_page(answer)

    async def list(self, *, function: Any = None) -> builtins.list[ScheduleInfo]:
        """Every schedule (of ``function`` when given), by id."""
        out: builtins.list[ScheduleInfo] = []
        after: str | None = None
        while True:
            page = await self.page(function=function, after=after, limit=PAGE)
            out.extend(page.items)
            if page.next_cursor is None:
                return out
            after = page.next_cursor

    async def pause(self, id: str) -> ScheduleInfo:
        """Pause the schedule (pausing a paused schedule changes nothing)."""
        return parse_schedule(await self._client.request("POST", _path(id, "/pause")))

    async def resume(self, id: str) -> ScheduleInfo:
        """Resume a paused schedule: ticks after now fire."""
        return parse_schedule(await self._client.request("POST", _path(id, "/resume")))

    async def delete(self, id: str) -> None:
        """Delete the schedule (its runs are left as they are)."""
        await self._client.request("DELETE", _path(id))

    async def trigger(self, id: str) -> RunHandle:
        """Start one run of the schedule now, whatever its cron, pause and overlap policy."""
        answer = await self._client.request("POST", _path(id, "/trigger"))
        return RunHandle(self._client, answer["run_id"], fresh=bool(answer["created"]))
