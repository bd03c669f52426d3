"""A suspension made through one replica's admin API ends a stream served by
another, over each cluster bus: Redis pub/sub (``GATEWAY_REDIS_URL``) and
PostgreSQL LISTEN/NOTIFY (``gateway.ops.cluster``).

The change feed (``GATEWAY_CHANGE_POLL_SECONDS``, which also tells replicas,
and is tested over SQLite in ``tests/e2e/test_account_cut_e2e.py``) is off
here, so that the bus is the only way the second replica can learn of it;
the principal cache's TTL does not matter, since a live stream is decided
again only when a change reaches it.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import TRUSTED, US_ENTERPRISE
from tests.e2e.test_account_cut_e2e import (
    EVENTS,
    _openai_stream,
    _outcome_error,
    _read_until_cut,
    _suspend,
)
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import Admin, GatewayConfig, Proc, start_gateway
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUS_ONLY = {**TRUSTED, "GATEWAY_CHANGE_POLL_SECONDS": "0"}


def _replicas(tmp_path: Path, standin: Proc, env: dict[str, str]) -> list[Proc]:
    cfg = GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env={**BUS_ONLY, **env})
    return [start_gateway(cfg), start_gateway(cfg)]


def _suspension_on_a_ends_the_stream_on_b(first: Proc, second: Proc, customer_id: str) -> None:
    admin = Admin(first.url)
    customer = admin.customer(id=customer_id, **US_ENTERPRISE)
    key = admin.key(str(customer["id"]))
    decision_id, events = _openai_stream(second, key)
    seen, error = _read_until_cut(events, _suspend(admin, customer_id), openai.APIError)
    assert isinstance(error, openai.APIError), f"the stream ran to its end ({seen} events)"
    assert error.code == "customer-suspended", error.body
    assert seen < EVENTS / 2, seen  # the bus: milliseconds, then the next chunk (250 ms)
    assert _outcome_error(Admin(second.url), decision_id) == "account_cut:customer-suspended"


@pytest.mark.redis
def test_a_suspension_reaches_another_replicas_stream_over_redis(
    tmp_path: Path, standin: Proc, redis: RedisServer
) -> None:
    replicas = _replicas(tmp_path, standin, {"GATEWAY_REDIS_URL": redis.url})
    try:
        _suspension_on_a_ends_the_stream_on_b(*replicas, "acme-redis-replica")
    finally:
        for proc in replicas:
            proc.stop()


@pytest.mark.postgres
def test_a_suspension_reaches_another_replicas_stream_over_postgres(
    tmp_path: Path, standin: Proc, postgres: PostgresServer
) -> None:
    replicas = _replicas(tmp_path, standin, {"GATEWAY_DATABASE_URL": migrated_database(postgres)})
    try:
        _suspension_on_a_ends_the_stream_on_b(*replicas, "acme-postgres-replica")
    finally:
        for proc in replicas:
            proc.stop()
