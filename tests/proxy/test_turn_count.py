"""The turn count (``messages_over``, the bundled ``long_horizon``) cannot be hidden
behind a decoy of the other API's field.

A Responses body carries its turns in ``input``; the count read ``messages``
whenever the body had that key, so ``"messages": []`` beside 45 ``input``
items counted 0 turns. An upstream that ignores the unknown field (vLLM's
OpenAI-compatible server only warns) served all 45. Both lists are counted,
and the larger is the body's turn count.
"""

from __future__ import annotations

import orjson

from gateway.proxy.body import parse_body

TURNS = [{"role": "user", "content": "hi"}] * 45


def test_a_decoy_messages_list_does_not_hide_the_input_turns() -> None:
    plain = parse_body(orjson.dumps({"model": "m", "input": TURNS}))
    assert plain.message_count == 45
    decoy = parse_body(orjson.dumps({"model": "m", "input": TURNS, "messages": []}))
    assert decoy.message_count == 45
    # The other way round too: a chat body's turns are not hidden by a short input.
    chat = parse_body(orjson.dumps({"model": "m", "messages": TURNS, "input": []}))
    assert chat.message_count == 45
    # A string input is one turn, as before.
    assert parse_body(b'{"model": "m", "input": "hi"}').message_count == 1
