"""Classification text is folded to what a model reads (``gateway.proxy.textfold``)."""

from __future__ import annotations

import hashlib

import orjson

from gateway.proxy.body import parse_body
from gateway.proxy.textfold import fold


def test_invisible_compatibility_and_tag_characters_fold_to_the_word() -> None:
    assert fold("ex\u200bpl\u00adoi\u2060t") == "exploit"
    assert fold("\uff45\uff58\uff50\uff4c\uff4f\uff49\uff54") == "exploit"
    assert fold("\U0001d41e\U0001d431\U0001d429") == "exp"  # mathematical bold
    assert fold("".join(chr(0xE0000 + ord(c)) for c in "shellcode")) == "shellcode"
    assert fold("CVE\u20102024\u20111234") == "CVE-2024-1234"
    assert fold("def\u00a0run(") == "def run("


def test_ordinary_text_is_returned_as_it_is() -> None:
    for text in ("plain ascii", "caf\u00e9", "\u4f60\u597d\uff0c\u4e16\u754c\uff08\uff09"):
        assert fold(text) is text


def test_a_prompt_perturbed_with_invisible_characters_has_the_same_hash() -> None:
    """``prompt_sha256`` links accounts that send identical prompts (account
    farms); a farm that sprinkles zero-width characters or fullwidth letters
    into one template must not get a new hash per copy. Ordinary text hashes
    exactly as before (fold returns it unchanged)."""
    sent = parse_body(orjson.dumps({"model": "m", "input": "ex\u200bplo\uff49t"}))
    plain = parse_body(orjson.dumps({"model": "m", "input": "exploit"}))
    assert sent.prompt_text == "exploit"
    assert sent.prompt_sha256 == plain.prompt_sha256
    # The input estimate still counts what the upstream reads: the bytes sent.
    assert sent.input_tokens_estimate > plain.input_tokens_estimate
    text = "caf\u00e9 \u4f60\u597d\uff0c"
    assert parse_body(orjson.dumps({"model": "m", "input": text})).prompt_sha256 == (
        hashlib.sha256(text.encode()).hexdigest()
    )
