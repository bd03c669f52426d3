"""``GATEWAY_DATABASE_URL`` as operators copy it from their provider: libpq
options (``sslmode``, ``application_name``), a unix-socket host, a password
with URL-reserved characters. Real ``gateway db upgrade`` runs and a real
PostgreSQL server (which has no TLS, so ``sslmode=require`` must be refused
by the server's answer, not by a Python ``TypeError``)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.db.session import create_engine
from gateway.settings import Settings
from tests.ops.helpers import TRUSTED, US_ENTERPRISE, chat
from tests.support.postgres_server import PostgresServer, migrated_database
from tests.support.processes import Admin, GatewayConfig, Proc, gateway_env, start_gateway

pytestmark = pytest.mark.postgres


def _db_upgrade(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_DATABASE_URL"] = url
    env["COLUMNS"] = "300"  # one line per message, whatever the terminal
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "db", "upgrade"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_libpq_ssl_options_are_understood(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    done = _db_upgrade(url + "?sslmode=prefer&application_name=gw-migrate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "database at revision" in done.stdout

    # The server has no TLS: `require` is its refusal, said in one line.
    refused = _db_upgrade(url + "?sslmode=require")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    assert "SSL" in refused.stdout, refused.stdout


async def test_serving_engine_passes_libpq_options_to_the_server(
    postgres: PostgresServer,
) -> None:
    url = postgres.create_database()
    settings = Settings(
        database_url=url + "?sslmode=disable&application_name=gw-replica-7", demo=True
    )
    engine = create_engine(settings, serving=True)
    try:
        async with engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar()
    finally:
        await engine.dispose()
    assert name == "gw-replica-7"


def test_unix_socket_host_and_a_password_with_reserved_characters(
    postgres: PostgresServer,
) -> None:
    password = "p@ss:w/rd%#?&= x"
    postgres.psql(f"CREATE ROLE odd LOGIN PASSWORD '{password}'")
    database = "odd_owned"
    postgres.psql(f'CREATE DATABASE "{database}" OWNER odd')
    socket_url = (
        f"postgresql+asyncpg://odd:{quote(password, safe='')}@/{database}"
        f"?host={postgres.root}&port={postgres.port}"
    )
    done = _db_upgrade(socket_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr


def test_a_database_serve_cannot_reach_is_one_line_not_a_traceback(
    postgres: PostgresServer,
) -> None:
    """`gateway serve` on PostgreSQL asks `gateway db check` whether the schema
    is at head; a wrong password or a server not up yet made the check print
    a 300-line traceback, which serve relayed whole."""
    good = postgres.create_database()
    wrong_password = good.replace(":gateway-test-password@", ":not-the-password@")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "COLUMNS": "300"})
    nobody_listens = good.replace(f":{postgres.port}/", ":1/")
    for url, says in ((wrong_password, "password authentication failed"),
                      (nobody_listens, "Connect call failed")):  # fmt: skip
        check = subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "db", "check"],
            env={**env, "GATEWAY_DATABASE_URL": url},
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert check.returncode == 1, check.stdout + check.stderr
        assert "Traceback" not in check.stdout + check.stderr, check.stdout + check.stderr
        assert says in check.stdout, check.stdout
        serve = subprocess.run(
            [sys.executable, "-m", "gateway.cli.main", "serve", "--port", "1"],
            env={**env, "GATEWAY_DATABASE_URL": url},
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        output = serve.stdout + serve.stderr
        assert serve.returncode == 2, output
        assert "Traceback" not in output and says in output, output
        assert "not-the-password" not in output


def test_the_connection_pool_is_bounded_by_the_settings(
    tmp_path: Path, postgres: PostgresServer, standin: Proc
) -> None:
    """Each process kept up to 30 PostgreSQL connections (10 + 20 overflow,
    fixed), so replicas x workers x 30 could pass the server's
    max_connections and lock out the audit writers. GATEWAY_DATABASE_POOL_SIZE
    and GATEWAY_DATABASE_MAX_OVERFLOW bound it; the audit writer holds one of
    them for good, so the smallest usable pool (2) still serves."""
    url = migrated_database(postgres)
    database = make_url(url).database
    env = {**TRUSTED, "GATEWAY_DATABASE_URL": url, "GATEWAY_DATABASE_POOL_SIZE": "2",
           "GATEWAY_DATABASE_MAX_OVERFLOW": "0", "GATEWAY_REDIS_URL": ""}  # fmt: skip
    gateway = start_gateway(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env))
    try:
        admin = Admin(gateway.url)
        keys = [admin.customer_with_key(**US_ENTERPRISE) for _ in range(3)]

        def one(key: str) -> int:
            return chat(gateway.url, key).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(one, keys * 8))
        assert statuses == [200] * 24
        # The pool's connections, plus the bus's own LISTEN connection.
        used = int(postgres.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"
        ).strip())  # fmt: skip
        assert used <= 3, used
    finally:
        assert gateway.stop() == 0, gateway.output()[-2000:]
    refused = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "serve", "--port", "1"],
        env={**gateway_env(GatewayConfig(tmp=tmp_path, upstream_url=standin.url, env=env)),
             "GATEWAY_DATABASE_POOL_SIZE": "1"},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "GATEWAY_DATABASE_POOL_SIZE" in refused.stdout + refused.stderr
