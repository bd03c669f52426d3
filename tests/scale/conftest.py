"""Scale-out fixtures: one real PostgreSQL, one real Redis, one stand-in upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres_server import PostgresServer, postgres_fixture
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
    proc.kill()
