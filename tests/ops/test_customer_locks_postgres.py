"""The customer locks (``gateway.kyc.customer_locks``) on PostgreSQL, where
they are ``SELECT ... FOR UPDATE`` and not SQLite's database write lock:
the tests that ran on SQLite only, run again on a real PostgreSQL server.

- Two KYC webhook deliveries for one customer, the older read first: the
  newer one is not rolled back (the gateway's own event and a vendor's).
- ``gateway customers withdraw-clearance`` does not lower a confirmed match
  an officer set after it read the customer.
- A KYC event, and a withdrawal, committed while a rescreen batch is in
  flight stand, and the batch screens the customer as it is then.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.admin.test_withdraw_clearance_race import confirmation_during_withdrawal
from tests.kyc.rescreen_race import CUSTOMER, kyc_event_during_batch
from tests.kyc.test_webhook_order_race import DELIVERIES, NEWER, Deliver, newer_during_older
from tests.kyc.withdrawal_race import migrated, withdrawal_during_batch
from tests.support.identity_app import make_db, make_settings
from tests.support.postgres_server import PostgresServer, migrated_database

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("deliver", DELIVERIES)
async def test_an_older_delivery_read_first_does_not_roll_back_a_newer_one_on_postgres(
    postgres: PostgresServer, tmp_path: Path, deliver: Deliver
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    try:
        assert await newer_during_older(sessions, deliver) == NEWER
    finally:
        await engine.dispose()


def test_a_confirmed_match_set_during_a_withdrawal_stands_on_postgres(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = confirmation_during_withdrawal(monkeypatch, migrated_database(postgres))
    assert "confirmed_match" in shown, shown


async def test_a_kyc_event_applied_during_a_batch_stands_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, database_url=postgres.create_database())
    engine, sessions = await make_db(settings)
    try:
        outcome, status, level = await kyc_event_during_batch(sessions, tmp_path, monkeypatch)
    finally:
        await engine.dispose()
    assert level == "verified"
    assert status == "potential_match" and [c.id for c in outcome.held] == [CUSTOMER]


async def test_a_withdrawal_during_a_batch_leaves_the_hit_unreviewed_on_postgres(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.create_database()
    engine, sessions = await migrated(tmp_path, url)
    try:
        outcome, (status, reviewed) = await withdrawal_during_batch(
            sessions, url, tmp_path, monkeypatch
        )
    finally:
        await engine.dispose()
    assert status == "potential_match" and reviewed == [False, False]
    assert outcome.screened == 1 and outcome.held == []
