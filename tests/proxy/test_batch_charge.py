"""Reading a Message Batch's results for the catch-up charge (gateway.proxy.batch_charge)."""

from __future__ import annotations

import orjson

from gateway.proxy.batch_charge import ResultsUsage, groups_of


def line(custom_id: str, kind: str = "succeeded", **usage: int) -> bytes:
    message = {"type": "message", "content": [{"type": "text", "text": 'a "usage" lookalike'}],
               "usage": usage}  # fmt: skip
    result = {"type": kind, "message": message} if kind == "succeeded" else {"type": kind}
    return orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"


def test_one_capability_set_is_one_group_without_its_ids() -> None:
    caps = frozenset({"chat"})
    assert groups_of([(caps, 10, "a"), (caps, 5, "b")]) == [
        {"capabilities": ["chat"], "reserved": 15}
    ]


def test_a_group_of_some_of_the_requests_keeps_their_ids() -> None:
    """The others' plan meters no tokens: their lines must not count here."""
    groups = groups_of([(frozenset(), 10, "a")], of_all=False)
    assert groups == [{"capabilities": [], "reserved": 10, "custom_ids": ["a"]}]
    seen = ResultsUsage(groups)
    seen.feed(line("a", input_tokens=5, output_tokens=5) + line("b", input_tokens=50))
    assert seen.used == [10]


def test_usage_is_summed_per_group_whatever_the_chunking() -> None:
    plain, agentic = frozenset(), frozenset({"agentic"})
    groups = groups_of([(plain, 10, "p1"), (agentic, 20, "t1"), (plain, 10, "p2")])
    assert [g["custom_ids"] for g in groups] == [["p1", "p2"], ["t1"]]
    body = (line("p1", input_tokens=12, output_tokens=7, cache_read_input_tokens=100)
            + line("t1", input_tokens=30, output_tokens=5)
            + line("p2", kind="errored")  # nothing generated, nothing used
            + line("stranger", input_tokens=999, output_tokens=1)  # not of this batch
            + line("p2", input_tokens=1, output_tokens=1).rstrip(b"\n"))  # fmt: skip
    for size in (1, 7, len(body)):
        seen = ResultsUsage(groups)
        for at in range(0, len(body), size):
            seen.feed(body[at : at + size])
        seen.finish()
        assert seen.used == [119 + 2, 35], size
