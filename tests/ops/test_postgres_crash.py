"""A PostgreSQL crash (immediate shutdown) keeps every decision the gateway
acknowledged, whatever the server's ``synchronous_commit``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import TRUSTED, US_ENTERPRISE
from tests.ops.helpers import chat
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]


def test_acknowledged_decisions_survive_a_server_crash_with_async_commit(
    tmp_path: Path, own_postgres: PostgresServer, standin: Proc
) -> None:
    """Seen in the chaos drill: PostgreSQL stopped with ``-m immediate`` under
    load lost the last decision records the gateway had acknowledged (200s
    already forwarded upstream, 403s already answered), and ``audit verify``
    passed, since the chain head rolled back with them. The server ran with
    ``synchronous_commit = off`` (as this test server does, and as DBAs set
    it for speed): COMMIT returns before the WAL is written, so "committed
    before forwarding" was not durable. The audit writer now asks for
    ``synchronous_commit = on`` on its own connection whatever the server's
    default. The WAL writer is slowed here so that the window is not left to
    chance."""
    own_postgres.psql("ALTER SYSTEM SET wal_writer_delay = '10s'")
    own_postgres.psql("SELECT pg_reload_conf()")
    assert own_postgres.psql("SHOW synchronous_commit").strip() == "off"
    url = migrated_database(own_postgres)
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url,
                        env={**TRUSTED, "GATEWAY_DATABASE_URL": url})  # fmt: skip
    gateway = start_gateway(cfg)
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        acknowledged = []
        for _ in range(5):
            response = chat(gateway.url, key)
            assert response.status_code == 200, response.text
            acknowledged.append(response.headers["x-gateway-decision-id"])
        own_postgres.crash()
        own_postgres.resume()
    finally:
        gateway.stop()
    name = url.rsplit("/", 1)[1]
    stored = set(own_postgres.psql("SELECT id FROM audit_records", database=name).split())
    missing = [rid for rid in acknowledged if rid not in stored]
    assert missing == [], f"{len(missing)} of 5 acknowledged decisions lost in the crash"
