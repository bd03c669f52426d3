"""The ``gateway`` command: one typer app assembling the sub-commands."""

from __future__ import annotations

import typer

from gateway.cli import (
    audit,
    customer_import,
    customer_rescreen,
    customer_reviews,
    customers,
    db,
    keys,
    policy,
    policy_explain,
    policy_impact,
    serve,
    tokens,
)

app = typer.Typer(
    name="gateway",
    help="Export-control and KYC tiering gateway for model APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
serve.register(app)
app.add_typer(db.app, name="db", help="Database schema (Alembic migrations).")
app.add_typer(policy.app, name="policy", help="Validate, test, diff and replay policy bundles.")
customer_import.register(customers.app)
customer_reviews.register(customers.app)
policy_impact.register(policy.app)
customer_rescreen.register(customers.app)
policy_explain.register(policy.app)
app.add_typer(customers.app, name="customers", help="KYC customer records.")
app.add_typer(keys.app, name="keys", help="Gateway API keys.")
app.add_typer(tokens.app, name="tokens", help="Admin-API tokens with roles.")
app.add_typer(audit.app, name="audit", help="Export and verify the decision log.")

if __name__ == "__main__":
    app()
