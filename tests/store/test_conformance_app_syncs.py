"""The store conformance suite, app syncs part: the Inngest apps' sync state
(:mod:`perdure.store.app_syncs`) is one row per app or URL holding its last sync and its last
attempt, upserted in place, the same on every backend."""

from __future__ import annotations

import pytest

from perdure.errors import InvalidInputError
from perdure.store.app_syncs import AppSyncIn, clip
from perdure.store.base import Store
from perdure.testing import ManualClock


async def test_a_registration_then_failures_keep_the_last_sync(
    store: Store, clock: ManualClock
) -> None:
    assert await store.list_app_syncs() == []
    t0 = store.now()
    row = await store.record_app_sync(
        AppSyncIn("app", "shop", True, "register", url="http://a/api", synced=True,
                  sdk="py:v0.5", framework="fast_api")
    )  # fmt: skip
    assert (row.kind, row.name, row.url, row.sdk, row.framework) == (
        "app", "shop", "http://a/api", "py:v0.5", "fast_api"
    )  # fmt: skip
    assert row.synced_at == row.attempt_at == pytest.approx(t0)
    assert (row.ok, row.error, row.source) == (True, None, "register")

    # A refused registration later: the last attempt changes, the last sync stays; no URL
    # given keeps the stored one.
    await clock.advance(5)
    failed = await store.record_app_sync(AppSyncIn("app", "shop", False, "register", "bad fn"))
    assert failed.attempt_at == pytest.approx(t0 + 5)
    assert (failed.ok, failed.error, failed.source) == (False, "bad fn", "register")
    assert failed.url == "http://a/api"
    assert (failed.synced_at, failed.sdk, failed.framework) == (
        row.synced_at, "py:v0.5", "fast_api"
    )  # fmt: skip

    # A new sync from another URL replaces the URL, SDK and framework.
    await clock.advance(5)
    again = await store.record_app_sync(
        AppSyncIn("app", "shop", True, "register", url="http://b/api", synced=True, sdk="py:v1")
    )
    assert again.synced_at == again.attempt_at == pytest.approx(t0 + 10)
    assert (again.url, again.sdk, again.framework, again.error) == ("http://b/api", "py:v1",
                                                                     None, None)  # fmt: skip
    assert await store.list_app_syncs() == [again]


async def test_url_rows_hold_the_last_put_and_rows_are_upserted_in_place(
    store: Store, clock: ManualClock
) -> None:
    url = "http://127.0.0.1:9/api/inngest"
    for i in range(30):  # polling: one row, however many attempts
        await clock.advance(1)
        last = await store.record_app_sync(
            AppSyncIn("url", url, i % 2 == 1, "poll", None if i % 2 else f"unreachable {i}", url)
        )
    assert (last.ok, last.error, last.source, last.url) == (True, None, "poll", url)
    assert last.synced_at is None and last.sdk is None
    resync = await store.record_app_sync(AppSyncIn("url", url, False, "resync", "refused", url))
    # An app and a URL of the same name are different rows; listed by kind, then name.
    app = await store.record_app_sync(AppSyncIn("app", url, False, "register", "x"))
    other = await store.record_app_sync(AppSyncIn("app", "a-first", False, "register", "y"))
    assert app.url == "" and app.synced_at is None
    rows = await store.list_app_syncs()
    assert rows == [other, app, resync]
    assert (rows[2].ok, rows[2].error, rows[2].source) == (False, "refused", "resync")


async def test_app_rows_are_deleted_by_name_and_kind(store: Store) -> None:
    for name in ("a", "b", "c"):
        await store.record_app_sync(AppSyncIn("app", name, True, "register", synced=True))
    await store.record_app_sync(AppSyncIn("url", "a", False, "poll", "down", "a"))
    assert await store.delete_app_syncs("app", ["a", "c", "a", "nope", "bad\x00name"]) == 2
    assert await store.delete_app_syncs("app", []) == 0
    assert [(r.kind, r.name) for r in await store.list_app_syncs()] == [("app", "b"), ("url", "a")]


async def test_text_that_cannot_be_stored_is_refused_and_clip_makes_it_storable(
    store: Store,
) -> None:
    bad = [
        AppSyncIn("app", "a\x00b", False, "register", "e"),
        AppSyncIn("app", "a", False, "register", "bad \ud800 error"),
        AppSyncIn("url", "u", False, "poll", "e", url="http://x/\x00"),
        AppSyncIn("other", "a", False, "poll"),  # type: ignore[arg-type]
    ]
    for sync in bad:
        with pytest.raises(InvalidInputError):
            await store.record_app_sync(sync)
    assert await store.list_app_syncs() == []
    error = clip("nul \x00 and \ud800 surrogate " + "x" * 5000)
    assert len(error) == 2000 and "\x00" not in error
    row = await store.record_app_sync(AppSyncIn("app", clip("a\x00b"), False, "register", error))
    assert row.error == error and row.name == "a\ufffdb"
