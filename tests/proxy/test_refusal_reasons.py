"""A refusal's message joins the reasons of every matching deny rule cleanly."""

from __future__ import annotations

from gateway.proxy.errors import join_reasons


def test_sentences_are_joined_as_sentences() -> None:
    reasons = (
        "Access from comprehensively sanctioned jurisdictions is not permitted.",
        "  This model is restricted to US persons.  ",
    )
    assert join_reasons(reasons) == (
        "Access from comprehensively sanctioned jurisdictions is not permitted. "
        "This model is restricted to US persons."
    )


def test_fragments_are_joined_with_semicolons() -> None:
    assert join_reasons(["status is confirmed_match", "Not served."]) == (
        "status is confirmed_match; Not served."
    )
    assert join_reasons(["", "  ", "only one"]) == "only one"
    assert join_reasons([]) == ""
