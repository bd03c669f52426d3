"""Fixtures for ops tests: real PostgreSQL and Redis servers for the session,
and the e2e fixtures (stand-in upstream, gateway processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import standin  # noqa: F401  (re-exported fixture)
from tests.support.postgres_server import PostgresServer, postgres_fixture
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    yield from postgres_fixture()


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server
