from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from gateway.identity.tables import AdminAction
from gateway.kyc.tables import Customer, CustomerHistory
from gateway.stages import AuthenticationFailed
from tests.admin.conftest import AdminEnv

URL = "/admin/v1/customers"


async def test_create_and_read_record(env: AdminEnv) -> None:
    body = {
        "id": "org-60cn",
        "name": "Brennix Microdevices GmbH",
        "kind": "organization",
        "incorporated_in": "de",
        "ownership": [{"country": "CN", "percent": 60}, {"country": "DE", "percent": 40}],
        "kyc_level": "kyb_verified",
        "kyc_verified_at": "2026-02-01T10:00:00+01:00",
        "kyc_expires_at": "2027-02-01T00:00:00Z",
        "tier": "enterprise",
    }
    r = await env.client.post(URL, json=body, headers=env.auth("compliance"))
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["id"] == "org-60cn" and rec["incorporated_in"] == "DE"
    assert rec["kyc_verified_at"] == "2026-02-01T09:00:00Z"  # normalised to UTC, RFC 3339
    assert rec["created_at"] == "2026-03-01T12:00:00Z"
    assert rec["sanctions_status"] == "clear" and rec["screening"]["list_version"]
    r = await env.client.get(f"{URL}/org-60cn", headers=env.auth("admin"))
    assert r.json() == rec
    r = await env.client.post(URL, json=body, headers=env.auth("admin"))
    assert r.status_code == 409
    r = await env.client.get(f"{URL}/nope", headers=env.auth("admin"))
    assert r.status_code == 404 and r.json()["detail"]


async def test_generated_id(env: AdminEnv) -> None:
    r = await env.client.post(URL, json={"name": "Ingrid Holmgren"}, headers=env.auth("admin"))
    assert r.status_code == 201 and r.json()["id"].startswith("cus_")


async def test_invalid_codes_are_422_naming_the_field(env: AdminEnv) -> None:
    cases = [
        ({"name": "x", "citizenships": ["US", "XX"]}, ["body", "citizenships", 1]),
        ({"name": "x", "residence": "USA"}, ["body", "residence"]),
        ({"name": "x", "ownership": [{"country": "ZZ", "percent": 5}]},
         ["body", "ownership", 0, "country"]),
        ({"name": "x", "kyc_expires_at": "2027-01-01T00:00:00"}, ["body", "kyc_expires_at"]),
    ]  # fmt: skip
    for body, loc in cases:
        r = await env.client.post(URL, json=body, headers=env.auth("admin"))
        assert r.status_code == 422, body
        assert any(e["loc"] == loc for e in r.json()["detail"]), r.json()
    r = await env.client.post(URL, json={"id": "c1", "name": "x"}, headers=env.auth("admin"))
    r = await env.client.patch(f"{URL}/c1", json={"residence": "QQ"}, headers=env.auth("admin"))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "residence"]


async def test_keyset_pagination(env: AdminEnv) -> None:
    for i in range(7):
        await env.client.post(
            URL, json={"id": f"p{i}", "name": f"P {i}"}, headers=env.auth("admin")
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await env.client.get(URL, params=params, headers=env.auth("admin"))).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(7)]
    r = await env.client.get(URL, params={"cursor": "!!!"}, headers=env.auth("admin"))
    assert r.status_code == 400


async def test_screening_on_create_rename_and_review(env: AdminEnv) -> None:
    r = await env.client.post(
        URL, json={"id": "s1", "name": "Kvetkin Borislav Andreevich"}, headers=env.auth("admin")
    )
    rec = r.json()
    assert rec["sanctions_status"] == "potential_match"
    assert rec["screening"]["best_match"] == "Кветкин Борислав Андреевич"
    assert rec["screening"]["score"] >= 0.9
    # Compliance clears after review.
    r = await env.client.patch(
        f"{URL}/s1", json={"sanctions_status": "clear"}, headers=env.auth("compliance")
    )
    assert r.json()["sanctions_status"] == "clear"
    # A clear customer renamed into a listed name is flagged again.
    await env.client.post(
        URL, json={"id": "s2", "name": "Teodor Marchetti"}, headers=env.auth("admin")
    )
    r = await env.client.patch(
        f"{URL}/s2", json={"name": "Zoltrava Shipping Ltd"}, headers=env.auth("admin")
    )
    assert r.json()["sanctions_status"] == "potential_match"
    # Renaming away does not clear it by itself.
    r = await env.client.patch(
        f"{URL}/s2", json={"name": "Teodor Marchetti"}, headers=env.auth("admin")
    )
    assert r.json()["sanctions_status"] == "potential_match"
    r = await env.client.patch(
        f"{URL}/s2", json={"sanctions_status": "confirmed_match", "reason": "the listed party"},
        headers=env.auth("compliance"),
    )
    assert r.json()["sanctions_status"] == "confirmed_match"


async def test_history_and_admin_actions(env: AdminEnv) -> None:
    await env.client.post(URL, json={"id": "h1", "name": "Hana"}, headers=env.auth("admin"))
    env.clock.now += timedelta(minutes=5)
    await env.client.patch(
        f"{URL}/h1", json={"tier": "research", "attributes": ["academic_affiliation"]},
        headers=env.auth("compliance"),
    )  # fmt: skip
    r = await env.client.get(f"{URL}/h1/history", headers=env.auth("admin"))
    items = r.json()["items"]
    assert [i["action"] for i in items] == ["customer.create", "customer.update"]
    assert items[1]["actor"] == "test-compliance" and items[1]["at"] == "2026-03-01T12:05:00Z"
    assert items[1]["changes"]["tier"] == {"before": "public", "after": "research"}
    assert set(items[1]["changes"]) == {"tier", "attributes"}
    async with env.services.sessions() as session:
        actions = (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars()
        last = list(actions)[-1]
        assert last.before is not None and last.after is not None
        assert last.actor_role == "compliance" and last.before["tier"] == "public"
        assert last.after["tier"] == "research"
    r = await env.client.patch(f"{URL}/h1", json={"tier": None}, headers=env.auth("admin"))
    assert r.status_code == 422  # nothing changed on error
    async with env.services.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(CustomerHistory))
        assert count == 2


async def test_writes_invalidate_identify_cache(env: AdminEnv) -> None:
    await env.client.post(URL, json={"id": "k1", "name": "Kim"}, headers=env.auth("admin"))
    r = await env.client.post(f"{URL}/k1/keys", json={}, headers=env.auth("admin"))
    assert r.status_code == 201
    key, key_id = r.json()["key"], r.json()["id"]
    assert key.startswith(f"gk_{key_id}_")
    assert (await env.identifier.identify(key, None)).status == "active"
    r = await env.client.patch(f"{URL}/k1", json={"status": "suspended"}, headers=env.auth("admin"))
    assert r.status_code == 200
    assert (await env.identifier.identify(key, None)).status == "suspended"
    r = await env.client.delete(f"/admin/v1/keys/{key_id}", headers=env.auth("admin"))
    assert r.status_code == 200 and r.json()["revoked_at"] == "2026-03-01T12:00:00Z"
    try:
        await env.identifier.identify(key, None)
        raise AssertionError("revoked key still accepted")
    except AuthenticationFailed as exc:
        assert "revoked" in exc.message
    r = await env.client.delete("/admin/v1/keys/unknown", headers=env.auth("admin"))
    assert r.status_code == 404
    r = await env.client.post(f"{URL}/nobody/keys", json={}, headers=env.auth("admin"))
    assert r.status_code == 404


# Valid RFC 3339 times whose UTC instant falls outside datetime's years 1..9999.
OUT_OF_RANGE = ("9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00")


async def test_out_of_range_times_are_422_naming_the_field(env: AdminEnv) -> None:
    r = await env.client.post(URL, json={"id": "t1", "name": "T"}, headers=env.auth("admin"))
    assert r.status_code == 201
    for value in OUT_OF_RANGE:
        for field in ("kyc_expires_at", "kyc_verified_at"):
            r = await env.client.post(URL, json={"name": "x", field: value},
                                      headers=env.auth("admin"))  # fmt: skip
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["loc"] == ["body", field], r.json()
            assert "UTC" in r.json()["detail"][0]["msg"]
            r = await env.client.patch(f"{URL}/t1", json={field: value}, headers=env.auth("admin"))
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field]
        r = await env.client.post(f"{URL}/t1/keys", json={"expires_at": value},
                                  headers=env.auth("admin"))  # fmt: skip
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "expires_at"]
        r = await env.client.get("/admin/v1/admin-actions", params={"from": value},
                                 headers=env.auth("auditor"))  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "from"]
    # The edges themselves are fine.
    r = await env.client.patch(f"{URL}/t1", json={"kyc_expires_at": "9999-12-31T23:59:59Z"},
                               headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 200 and r.json()["kyc_expires_at"] == "9999-12-31T23:59:59Z"


async def test_unknown_kyc_level_and_tier_are_422_listing_the_allowed(env: AdminEnv) -> None:
    r = await env.client.post(URL, json={"id": "v1", "name": "V"}, headers=env.auth("admin"))
    assert r.status_code == 201
    cases = [("tier", "platinum", "enterprise"), ("kyc_level", "super", "kyb_verified"),
             ("kyc_level", "goverment_cleared", "government_cleared")]  # fmt: skip
    for field, bad, allowed in cases:
        r = await env.client.post(URL, json={"name": "x", field: bad}, headers=env.auth("admin"))
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", field] and bad in error["msg"] and allowed in error["msg"]
        r = await env.client.patch(f"{URL}/v1", json={field: bad}, headers=env.auth("admin"))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
    r = await env.client.get(f"{URL}/v1", headers=env.auth("admin"))
    assert (r.json()["tier"], r.json()["kyc_level"]) == ("public", "none")  # nothing changed
    page = (await env.client.get(URL, headers=env.auth("admin"))).json()
    assert [c["id"] for c in page["items"]] == ["v1"]


async def test_a_tier_the_bundle_no_longer_has_is_left_alone(env: AdminEnv) -> None:
    """Validation applies to values written now; stored ones keep their runtime
    meaning (an unknown tier is served as public) and other fields stay editable."""
    r = await env.client.post(URL, json={"id": "old", "name": "O", "tier": "enterprise"},
                              headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 201
    async with env.services.sessions() as session:
        row = await session.get(Customer, "old")
        assert row is not None
        row.tier = "legacy_gold"  # as if the tier was removed from the bundle since
        await session.commit()
    r = await env.client.patch(f"{URL}/old", json={"residence": "DE"}, headers=env.auth("admin"))
    assert r.status_code == 200 and r.json()["tier"] == "legacy_gold"


async def test_lists_are_deduplicated_and_capped(env: AdminEnv) -> None:
    body = {"id": "d1", "name": "D", "citizenships": ["US", "de", "US", "DE", "fr"],
            "attributes": ["b", "a", "b", "a", "c"]}  # fmt: skip
    r = await env.client.post(URL, json=body, headers=env.auth("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["citizenships"] == ["US", "DE", "FR"]  # first occurrence, order kept
    assert r.json()["attributes"] == ["b", "a", "c"]
    r = await env.client.patch(f"{URL}/d1", json={"citizenships": ["CN", "CN"],
                               "attributes": ["x", "x"]}, headers=env.auth("admin"))  # fmt: skip
    assert r.json()["citizenships"] == ["CN"] and r.json()["attributes"] == ["x"]
    too_many = {
        "citizenships": ["US"] * 20000,
        "attributes": ["a"] * 65,
        "ownership": [{"country": "DE", "percent": 1}] * 65,
    }
    for field, value in too_many.items():
        for method, url, extra in (("POST", URL, {"name": "x"}), ("PATCH", f"{URL}/d1", {})):
            r = await env.client.request(method, url, json={**extra, field: value},
                                         headers=env.auth("admin"))  # fmt: skip
            assert r.status_code == 422, (method, field, r.text[:300])
            assert r.json()["detail"][0]["loc"] == ["body", field]
            assert "64" in r.json()["detail"][0]["msg"]
    r = await env.client.patch(f"{URL}/d1", json={"attributes": [f"a{i}" for i in range(64)]},
                               headers=env.auth("admin"))  # fmt: skip
    assert r.status_code == 200 and len(r.json()["attributes"]) == 64


async def test_revoke_routes_take_the_whole_credential_and_never_echo_its_secret(
    env: AdminEnv,
) -> None:
    """An operator holding a leaked key or token pastes it whole: the routes
    take the id from it, and no answer repeats the secret (one did, in its 404)."""
    await env.client.post(URL, json={"id": "lk", "name": "Lee"}, headers=env.auth("admin"))
    for form in ("{id}", "gk_{id}", "gk_{id}_{secret}"):
        made = await env.client.post(f"{URL}/lk/keys", json={}, headers=env.auth("admin"))
        key_id, secret = made.json()["id"], made.json()["key"].split("_")[2]
        r = await env.client.delete(
            "/admin/v1/keys/" + form.format(id=key_id, secret=secret), headers=env.auth("admin"))
        assert r.status_code == 200 and r.json()["id"] == key_id, (form, r.text)
        assert secret not in r.text
    leaked = "a" * 52
    for path in (f"/admin/v1/keys/gk_0123456789abcdef_{leaked}",
                 f"/admin/v1/keys/gat_0123456789abcdef_{leaked}",
                 f"/admin/v1/tokens/gat_0123456789abcdef_{leaked}",
                 f"/admin/v1/tokens/gk_0123456789abcdef_{leaked}"):
        r = await env.client.delete(path, headers=env.auth("admin"))
        assert r.status_code == 404, (path, r.text)
        assert leaked not in r.text, (path, r.text)
    made = await env.client.post("/admin/v1/tokens", json={"role": "auditor", "name": "bot"},
                                 headers=env.auth("admin"))  # fmt: skip
    assert made.status_code == 201, made.text
    whole = made.json()["token"]
    r = await env.client.delete(f"/admin/v1/tokens/{whole}", headers=env.auth("admin"))
    assert r.status_code == 200 and whole.split("_")[2] not in r.text, r.text
