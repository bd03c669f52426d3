"""The end-to-end suites again, with the gateway on PostgreSQL.

The test functions are the ones in ``tests/e2e`` (imported, not copied); the
fixtures below give them gateways whose ``GATEWAY_DATABASE_URL`` is a fresh
PostgreSQL database, copied from one brought to head by ``gateway db upgrade``
(on PostgreSQL, ``serve`` refuses a database that is not at head).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e import (
    test_audit_e2e,
    test_batches_e2e,
    test_identity_e2e,
    test_policy_e2e,
    test_proxy_failures,
    test_proxy_sdks,
    test_stored_retrieval_e2e,
)
from tests.e2e.conftest import TRUSTED, US_ENTERPRISE
from tests.e2e.test_identity_e2e import issuer  # noqa: F401  (fixture of imported tests)
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

# Calls on stored responses by id: ownership, the model kept with it, and the
# background charge claimed by a conditional UPDATE, on PostgreSQL too; and
# Message Batches (their bindings, the keyset-paged list, N records a create).
# Tests that break the SQLite file under the gateway stay SQLite-only.
_SQLITE_ONLY = {"test_a_batch_created_upstream_but_not_bound_keeps_its_charge"}
for _module in (test_proxy_sdks, test_proxy_failures, test_identity_e2e, test_policy_e2e,
                test_stored_retrieval_e2e, test_batches_e2e):
    for _name in dir(_module):
        if _name.startswith("test_") and _name not in _SQLITE_ONLY:
            globals()[_name] = getattr(_module, _name)

# The audit log's one-record-per-decision run, on PostgreSQL too (the
# SQLite-file outage and crash tests of that module stay SQLite-only).
test_every_request_of_a_mixed_run_has_exactly_one_record = (
    test_audit_e2e.test_every_request_of_a_mixed_run_has_exactly_one_record
)


@pytest.fixture(scope="module")
def template(postgres: PostgresServer) -> str:
    database = make_url(migrated_database(postgres)).database
    assert database is not None
    return database


@pytest.fixture()
def standin_log(standin: Proc) -> Iterator[Callable[[], list[dict[str, object]]]]:
    httpx.delete(f"{standin.url}/_standin/requests")

    def read() -> list[dict[str, object]]:
        received: list[dict[str, object]] = httpx.get(f"{standin.url}/_standin/requests").json()
        return received

    yield read


@pytest.fixture()
def gateway_factory(
    tmp_path: Path, standin: Proc, postgres: PostgresServer, template: str
) -> Iterator[Callable[..., Proc]]:
    started: list[Proc] = []
    url = postgres.create_database(template=template)

    def start(
        env: dict[str, str] | None = None, upstream_url: str | None = standin.url, **kw: Any
    ) -> Proc:
        merged = {**TRUSTED, "GATEWAY_DATABASE_URL": url, **(env or {})}
        cfg = GatewayConfig(tmp=tmp_path, upstream_url=upstream_url, env=merged)
        for key, value in kw.items():
            setattr(cfg, key, value)
        proc = start_gateway(cfg)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture()
def gateway(gateway_factory: Callable[..., Proc]) -> Proc:
    return gateway_factory()


@pytest.fixture()
def admin(gateway: Proc) -> Admin:
    return Admin(gateway.url)


@pytest.fixture()
def enterprise_key(admin: Admin) -> str:
    return admin.customer_with_key(**US_ENTERPRISE)
