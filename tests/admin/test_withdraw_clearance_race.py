"""`gateway customers withdraw-clearance` never lowers a confirmed match: it
decided so on the customer it read, and a `confirmed_match` an officer set
between that read and its write was lowered to `potential_match` (the CLI
now locks the customer before it reads it)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from gateway.cli import customers
from gateway.cli.main import app as gateway_cli
from gateway.kyc import service
from gateway.kyc.schemas import CustomerPatch
from gateway.kyc.tables import Customer

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data"


async def _set_status(sessions: customers.Sessions, status: str) -> None:
    async with sessions() as session:
        patch = CustomerPatch.model_validate({"sanctions_status": status})
        await service.update_customer(session, "h3", patch, customers.cli_actor(), None,
                                      datetime.now(UTC))  # fmt: skip
        await session.commit()


def confirmation_during_withdrawal(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    """The CLI withdraws a clearance; an officer's confirmed_match arrives
    once it has read the customer. ``customers show`` after both (shared
    with the PostgreSQL tests, ``tests/ops/test_customer_locks_postgres.py``)."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_SANCTIONS_LIST", str(DATA / "sanctions_sample.ftm.jsonl"))
    added = runner.invoke(customers.app, ["add", "Halvard Quenneth Brisk", "--id", "h3"])
    assert added.exit_code == 0, added.output

    async def clear(_: object, sessions: customers.Sessions) -> None:
        await _set_status(sessions, "clear")

    customers.run_db(clear)
    real = service.get_customer
    officer: list[threading.Thread] = []

    def confirm() -> None:
        customers.run_db(lambda _, sessions: _set_status(sessions, "confirmed_match"))

    async def read_then_confirm(session: AsyncSession, customer_id: str) -> Customer:
        found = await real(session, customer_id)
        if not officer:
            # The officer's confirmed_match (another process) arrives once the
            # CLI has read the customer; given a second, as it cannot finish
            # while the CLI holds the customer.
            officer.append(threading.Thread(target=confirm))
            officer[0].start()
            await asyncio.to_thread(officer[0].join, 1.0)
        return found

    monkeypatch.setattr(service, "get_customer", read_then_confirm)
    r = runner.invoke(gateway_cli, ["customers", "withdraw-clearance", "h3", "--reason", "dob"])
    assert r.exit_code == 0, r.output
    officer[0].join(30)
    monkeypatch.setattr(service, "get_customer", real)
    return runner.invoke(customers.app, ["show", "h3"]).output


def test_a_confirmed_match_set_during_a_withdrawal_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = confirmation_during_withdrawal(
        monkeypatch, f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    )
    assert "confirmed_match" in shown, shown
