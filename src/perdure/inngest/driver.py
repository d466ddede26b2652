"""PLACEHOLDER (helper SYNC): the interface of the Inngest driver, so that the server can be
wired before the real driver lands. The EXEC helper's ``InngestDriver`` replaces this file; its
``execute`` is the only part that does nothing here (it raises ``NotImplementedError``)."""

from __future__ import annotations

import httpx

from perdure.inngest.functions import InngestApp, InngestFunction
from perdure.runtime.attempt import Attempt
from perdure.store.base import Outcome


class InngestDriver:
    """Executes the runs of Inngest functions (satisfies ``runtime.driver.Driver``)."""

    def __init__(self, *, server_kind: str = "dev", http: httpx.AsyncClient | None = None) -> None:
        self.server_kind = server_kind
        self.http = http
        self.functions: dict[str, InngestFunction] = {}

    def replace_app(self, app: InngestApp) -> None:
        """Add or replace an app's functions; drop the app's functions it no longer has."""
        for fid in [f.id for f in self.functions.values() if f.app_id == app.id]:
            del self.functions[fid]
        for fn in app.functions:
            self.functions[fn.id] = fn

    async def execute(self, attempt: Attempt) -> Outcome | None:
        """PLACEHOLDER: the EXEC helper's driver executes the attempt."""
        raise NotImplementedError("the Inngest driver is not merged yet")

    def close(self) -> None:
        """Release the driver's resources."""
