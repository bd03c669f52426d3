"""Fixtures for ops tests: real PostgreSQL and Redis servers for the session,
and the e2e fixtures (stand-in upstream, gateway processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres_server import PostgresServer, available, postgres_fixture
from tests.support.processes import Proc, start_standin
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    yield from postgres_fixture()


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def standin() -> Iterator[Proc]:
    proc = start_standin()
    yield proc
    # SIGKILL: the stand-in waits out streams whose gateway died (shutdown tests).
    proc.kill()


@pytest.fixture()
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, for tests that stop, crash or freeze it."""
    if not available():
        pytest.skip("PostgreSQL is not installed")
    with PostgresServer() as server:
        yield server
