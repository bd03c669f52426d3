from __future__ import annotations

from gateway.admin.auth import admin_authenticator
from tests.admin.conftest import AdminEnv


async def test_bootstrap_and_created_tokens(env: AdminEnv) -> None:
    r = await env.client.post(
        "/admin/v1/tokens",
        json={"role": "compliance", "name": "alice"},
        headers=env.auth("bootstrap"),
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith(f"gat_{r.json()['id']}_") and r.json()["role"] == "compliance"
    hdr = {"authorization": f"Bearer {token}"}
    assert (await env.client.get("/admin/v1/customers", headers=hdr)).status_code == 200
    assert (await env.client.post("/admin/v1/tokens", json={"role": "admin", "name": "x"},
                                  headers=hdr)).status_code == 403  # fmt: skip
    r = await env.client.post(
        "/admin/v1/tokens", json={"role": "root", "name": "x"}, headers=env.auth("admin")
    )
    assert r.status_code == 422
    # Revocation takes effect at once on this replica.
    token_id = token.split("_")[1]
    r = await env.client.delete(f"/admin/v1/tokens/{token_id}", headers=env.auth("admin"))
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await env.client.get("/admin/v1/customers", headers=hdr)).status_code == 401


async def test_wrong_secret_for_known_id(env: AdminEnv) -> None:
    token = env.tokens["admin"]
    forged = token[:-1] + ("b" if token[-1] == "a" else "a")
    r = await env.client.get("/admin/v1/customers", headers={"authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_the_limiter_is_built_on_the_first_failure(env: AdminEnv) -> None:
    # A worker that only ever sees good tokens never imports ``limits``.
    for _ in range(3):
        ok = await env.client.get("/admin/v1/customers", headers=env.auth("admin"))
        assert ok.status_code == 200
    auth = admin_authenticator(env.services)  # type: ignore[arg-type]
    assert auth.lockout._local is None
    bad = {"authorization": "Bearer gat_guess_guess"}
    assert (await env.client.get("/admin/v1/customers", headers=bad)).status_code == 401
    assert auth.lockout._local is not None


async def test_failed_attempts_rate_limited_per_ip(env: AdminEnv) -> None:
    bad = {"authorization": "Bearer gat_guess_guess"}
    for _ in range(20):
        assert (await env.client.get("/admin/v1/customers", headers=bad)).status_code == 401
    r = await env.client.get("/admin/v1/customers", headers=bad)
    assert r.status_code == 429 and r.headers["retry-after"]
    # Even a valid token is refused from that IP while it is blocked.
    r = await env.client.get("/admin/v1/customers", headers=env.auth("admin"))
    assert r.status_code == 429
    # Successes do not count: a fresh authenticator (another window) lets it through.
    env.services.extras.pop("admin_auth")
    assert (
        await env.client.get("/admin/v1/customers", headers=env.auth("admin"))
    ).status_code == 200
    assert admin_authenticator(env.services) is env.services.extras["admin_auth"]  # type: ignore[arg-type]


def test_the_client_address_reads_every_forwarded_for_line() -> None:
    # The admin lockout counts failures per client address. A client whose
    # proxy adds its own X-Forwarded-For line (instead of appending) must not
    # choose that address with a line of its own, and so escape the lockout.
    from ipaddress import ip_network
    from types import SimpleNamespace

    from starlette.requests import Request

    from gateway.admin.auth import client_ip
    from gateway.geo.locate import IPLocator, iptocc_lookup

    locator = IPLocator(iptocc_lookup, [ip_network("127.0.0.0/8")])
    request = Request({
        "type": "http", "method": "GET", "path": "/admin/v1/customers", "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-for", b"8.8.8.8")],
    })
    assert client_ip(request, SimpleNamespace(locator=locator)) == "8.8.8.8"  # type: ignore[arg-type]
