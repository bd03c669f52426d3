"""``GET /admin/v1/admin-actions``: the admin action log, read by an auditor."""

from __future__ import annotations

from datetime import timedelta

from tests.admin.conftest import AdminEnv


async def test_who_changed_what(env: AdminEnv) -> None:
    c = env.client
    start = env.clock.now
    made = await c.post("/admin/v1/customers", headers=env.auth("compliance"),
                        json={"id": "acme", "name": "Acme", "tier": "public"})  # fmt: skip
    assert made.status_code == 201, made.text
    env.clock.now = start + timedelta(minutes=5)
    patched = await c.patch("/admin/v1/customers/acme", headers=env.auth("compliance"),
                            json={"status": "suspended"})  # fmt: skip
    assert patched.status_code == 200, patched.text
    env.clock.now = start + timedelta(minutes=10)
    key = await c.post("/admin/v1/customers/acme/keys", headers=env.auth("admin"), json={})
    assert key.status_code == 201, key.text
    key_id, secret = key.json()["id"], key.json()["key"].split("_")[2]
    revoked = await c.delete(f"/admin/v1/keys/{key_id}", headers=env.auth("admin"))
    assert revoked.status_code == 200

    page = await c.get("/admin/v1/admin-actions", headers=env.auth("auditor"))
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [(i["action"], i["target_type"], i["target_id"]) for i in items] == [
        ("customer.create", "customer", "acme"),
        ("customer.update", "customer", "acme"),
        ("key.create", "api_key", key_id),
        ("key.revoke", "api_key", key_id),
    ]
    update = items[1]
    assert update["actor"] == "test-compliance" and update["actor_role"] == "compliance"
    assert update["token_id"] == env.tokens["compliance"].split("_")[1]
    assert update["before"]["status"] == "active" and update["after"]["status"] == "suspended"
    assert update["at"] == "2026-03-01T12:05:00Z"
    assert items[3]["before"]["revoked_at"] is None and items[3]["after"]["revoked_at"]
    assert secret not in page.text  # key rows carry metadata, never the secret

    async def actions(**params: str) -> list[str]:
        r = await c.get("/admin/v1/admin-actions", headers=env.auth("auditor"), params=params)
        assert r.status_code == 200, r.text
        return [i["action"] for i in r.json()["items"]]

    assert await actions(target_type="api_key") == ["key.create", "key.revoke"]
    assert await actions(target_id="acme", action="customer.update") == ["customer.update"]
    assert await actions(actor="test-admin") == ["key.create", "key.revoke"]
    window = {"from": "2026-03-01T12:04:00Z", "to": "2026-03-01T12:06:00+00:00"}
    assert await actions(**window) == ["customer.update"]

    # Keyset pages, oldest first, until next_cursor is null.
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        r = await c.get("/admin/v1/admin-actions", headers=env.auth("auditor"), params=params)
        seen += [i["id"] for i in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in items]


async def test_roles_and_bad_queries(env: AdminEnv) -> None:
    c = env.client
    path = "/admin/v1/admin-actions"
    assert (await c.get(path)).status_code == 401
    assert (await c.get(path, headers=env.auth("compliance"))).status_code == 403
    assert (await c.get(path, headers=env.auth("admin"))).status_code == 200
    bad_cursor = await c.get(path, headers=env.auth("auditor"), params={"cursor": "!!"})
    assert bad_cursor.status_code == 400
    backwards = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}
    assert (await c.get(path, headers=env.auth("auditor"), params=backwards)).status_code == 422


async def test_times_are_refused_as_the_decision_log_refuses_them(env: AdminEnv) -> None:
    """``from``/``to`` take what ``GET /decisions`` takes (RFC 3339 with ``Z``
    or an offset) and refuse the rest the same way (``gateway.audit.filters``,
    tested for the decision log in tests/audit): a 422 naming the parameter.
    A naive time was read as UTC here, a different instant than the auditor's
    own clock may have meant, while the decision log refused it."""
    path = "/admin/v1/admin-actions"
    for param, value in [("from", "2026-03-01T12:00:00"), ("to", "2026-03-01 12:00:00"),
                         ("from", "2026-03-01"), ("to", "1772366400")]:  # fmt: skip
        r = await env.client.get(path, headers=env.auth("auditor"), params={param: value})
        assert r.status_code == 422, (param, value, r.text)
        [error] = r.json()["detail"]
        assert error["loc"] == ["query", param] and "RFC 3339" in error["msg"], error
    backwards = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00+01:00"}
    r = await env.client.get(path, headers=env.auth("auditor"), params=backwards)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "to"], r.text
    zoned = {"from": "2026-03-01T13:00:00+01:00", "to": "2026-03-02T00:00:00z"}
    r = await env.client.get(path, headers=env.auth("auditor"), params=zoned)
    assert r.status_code == 200, r.text
