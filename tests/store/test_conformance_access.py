"""The store conformance suite, access part: keys (stored hashed), sessions and the audit
trail, the same on every backend; and environments isolate them (a key stored in one
environment cannot be found from another)."""

from __future__ import annotations

import pytest

from conftest import STORE_T0 as T0
from perdure.store import env_url, open_store
from perdure.store.access import AuditIn, NewKey
from perdure.store.base import Store
from perdure.testing import ManualClock


def key(kid: str = "key_1", **kw: object) -> NewKey:
    fields: dict[str, object] = {
        "id": kid,
        "name": f"name of {kid}",
        "scopes": ("read", "ingest"),
        "token_hash": f"hash-{kid}",
        "prefix": f"pdk_default_{kid}",
        "created_by": "cli:me@here",
        "expires_at": None,
    }
    fields.update(kw)
    return NewKey(**fields)  # type: ignore[arg-type]


async def test_keys_are_created_listed_found_by_hash_and_revoked(
    store: Store, clock: ManualClock
) -> None:
    made = await store.create_key(key("key_1", expires_at=T0 + 60))
    assert made.id == "key_1" and made.scopes == ("read", "ingest")
    assert made.created_at == T0 and made.expires_at == T0 + 60
    assert made.revoked_at is None and made.last_used_at is None
    assert made.created_by == "cli:me@here"
    await clock.advance(1)
    await store.create_key(key("key_2"))
    assert [k.id for k in await store.list_keys()] == ["key_2", "key_1"]  # newest first
    found = await store.key_by_hash("hash-key_1")
    assert found is not None and found.id == "key_1" and found.live(T0 + 59)
    assert not found.live(T0 + 60)  # expired
    assert await store.key_by_hash("hash-nope") is None
    await clock.advance(1)
    await store.touch_key("key_2")
    touched = await store.key_by_hash("hash-key_2")
    assert touched is not None and touched.last_used_at == T0 + 2
    revoked = await store.revoke_key("key_2")
    assert revoked is not None and revoked.revoked_at == T0 + 2 and not revoked.live(T0)
    await clock.advance(5)
    again = await store.revoke_key("key_2")  # idempotent: the first revocation time stays
    assert again is not None and again.revoked_at == T0 + 2
    assert await store.revoke_key("key_unknown") is None
    assert await store.revoke_key("nul\x00") is None


async def test_a_token_hash_is_unique(store: Store) -> None:
    await store.create_key(key("key_1"))
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own integrity error
        await store.create_key(key("key_2", token_hash="hash-key_1"))
    assert [k.id for k in await store.list_keys()] == ["key_1"]


async def test_sessions_carry_their_key_and_end_with_it(store: Store, clock: ManualClock) -> None:
    await store.create_key(key("key_1"))
    await store.create_session("sess-a", "key_1", "csrf-a", T0 + 100)
    await store.create_session("sess-b", "key_1", "csrf-b", T0 + 10)
    a = await store.get_session("sess-a")
    assert a is not None and a.csrf == "csrf-a" and a.key.id == "key_1"
    assert a.created_at == T0 and a.expires_at == T0 + 100
    await store.delete_session("sess-a")
    assert await store.get_session("sess-a") is None
    # Opening a session deletes the expired ones.
    await clock.advance(20)
    await store.create_session("sess-c", "key_1", "csrf-c", T0 + 200)
    assert await store.get_session("sess-b") is None
    # Revoking the key ends its sessions.
    await store.revoke_key("key_1")
    assert await store.get_session("sess-c") is None


async def test_the_audit_trail_by_run_newest_first_with_a_cursor(
    store: Store, clock: ManualClock
) -> None:
    await store.record_audit(
        [
            AuditIn("key:k1", "cancel", "run-a"),
            AuditIn("cli:me", "rerun", "run-a", "run-b", {"n": 1}),
        ]
    )
    await clock.advance(1)
    await store.record_audit([AuditIn("key:k2", "key.create", target="key_9")])
    await store.record_audit([])
    everything = await store.list_audit()
    assert [e.action for e in everything] == ["key.create", "rerun", "cancel"]
    assert everything[0].at == T0 + 1 and everything[0].run_id is None
    of_a = await store.list_audit("run-a")
    assert [(e.actor, e.action, e.target, e.detail) for e in of_a] == [
        ("cli:me", "rerun", "run-b", {"n": 1}),
        ("key:k1", "cancel", None, None),
    ]
    older = await store.list_audit("run-a", before=of_a[0].seq)
    assert [e.action for e in older] == ["cancel"]
    assert await store.list_audit("run-a", limit=1) == of_a[:1]
    assert await store.list_audit("run-z") == []
    assert await store.list_audit(before=2**70) == everything  # past every seq: no cursor


async def test_environments_do_not_see_each_other(db_url: str, clock: ManualClock) -> None:
    default = open_store(db_url, clock=clock)
    staging = open_store(env_url(db_url, "staging"), clock=clock)
    await default.open()
    await staging.open()
    try:
        await default.create_key(key("key_d"))
        await staging.create_key(key("key_s", token_hash="hash-s"))
        await staging.record_audit([AuditIn("key:key_s", "cancel", "run-s")])
        assert [k.id for k in await default.list_keys()] == ["key_d"]
        assert [k.id for k in await staging.list_keys()] == ["key_s"]
        assert await default.key_by_hash("hash-s") is None
        assert await staging.key_by_hash("hash-key_d") is None
        assert await default.list_audit() == []
        assert len(await staging.list_audit("run-s")) == 1
    finally:
        await staging.close()
        await default.close()
