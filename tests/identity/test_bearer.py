"""What an Authorization header that carries no bearer token is told."""

from __future__ import annotations

import pytest

from gateway.identity.bearer import parse_authorization


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer gk_a_b", "gk_a_b"), ("bearer   gk_a_b  ", "gk_a_b"), ("BEARER x", "x")],
)
def test_bearer_tokens(header: str, token: str) -> None:
    assert parse_authorization(header) == (token, None)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("Basic dXNlcjpwYXNz", "unsupported authorization scheme 'Basic'"),
        ("Digest username=x", "unsupported authorization scheme 'Digest'"),
        ("Bearer", "empty bearer token"),
        ("Bearer    ", "empty bearer token"),
        ("", "empty Authorization header"),
        # A key pasted without a scheme is described, never echoed.
        ("gk_0123456789abcdef_secretsecret", "without a scheme"),
        ("hunter2 x", "without a scheme"),
    ],
)
def test_what_is_wrong_is_said_without_quoting_secrets(header: str, problem: str) -> None:
    token, said = parse_authorization(header)
    assert token is None and said is not None and problem in said
    assert "secret" not in said and "hunter2" not in said
    assert "Bearer <key>" in said or said == "empty bearer token"


def test_no_header_is_no_problem_here() -> None:
    # "missing credential" is the identifier's to say: x-api-key may carry one.
    assert parse_authorization(None) == (None, None)
