"""/readyz answers for the audit log too: a replica whose decision records
cannot commit refuses every request (503), so it is not ready, even while the
database still answers ``SELECT 1``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.ops.helpers import TRUSTED, US_ENTERPRISE, chat
from tests.support.postgres_server import PASSWORD, USER, PostgresServer, migrated_database
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def _ready(gateway: Proc) -> tuple[int, dict[str, bool]]:
    response = httpx.get(f"{gateway.url}/readyz", timeout=10)
    checks: dict[str, bool] = response.json()["checks"]
    return response.status_code, checks


def test_readyz_is_false_while_audit_records_cannot_commit(
    tmp_path: Path, postgres: PostgresServer, standin: Proc
) -> None:
    url = migrated_database(postgres)
    database = make_url(url).database
    role = f"dml_{database}"
    # The least-privileged role a production gateway runs as: data, no DDL.
    postgres.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    postgres.psql(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
                  f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                  database=database)  # fmt: skip
    as_role = url.replace(f"//{USER}:", f"//{role}:")
    env = {**TRUSTED, "GATEWAY_DATABASE_URL": as_role}
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
        assert chat(gateway.url, key).status_code == 200
        assert _ready(gateway)[0] == 200

        postgres.psql(f"REVOKE INSERT ON audit_records FROM {role}", database=database)
        assert chat(gateway.url, key).status_code == 503
        status, checks = _ready(gateway)
        assert (status, checks["database"], checks.get("audit")) == (503, True, False)

        postgres.psql(f"GRANT INSERT ON audit_records TO {role}", database=database)
        deadline = time.monotonic() + 10
        answered = 503
        while answered == 503 and time.monotonic() < deadline:
            time.sleep(0.2)  # the writer backs off between failed batches
            answered = chat(gateway.url, key).status_code
        assert answered == 200
        status, checks = _ready(gateway)
        assert (status, checks.get("audit")) == (200, True)
    finally:
        assert gateway.stop() == 0, gateway.output()[-2000:]
