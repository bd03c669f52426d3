"""Input given as token ids, which the text-based input estimate cannot see."""

from __future__ import annotations

from typing import Any

_TOKEN_ID_KEYS = ("prompt", "input")
"""Where a body may carry its input as token ids: ``/v1/completions``' ``prompt``
and ``/v1/embeddings``' ``input`` (a list of integers, or a list of such lists)."""


def token_ids(body: dict[str, Any]) -> int:
    """How many input tokens the body gives as token ids: each integer is one
    token the model reads and the upstream bills. ``body._text_of`` skips numbers
    (they are no prompt text), so without this a body of token ids reserved
    one input token however many it carried."""
    count = 0
    for key in _TOKEN_ID_KEYS:
        value = body.get(key)
        if type(value) is not list:
            continue  # a string (already counted as text) or absent: the common case
        for item in value:
            if type(item) is int:
                count += 1
            elif type(item) is list:
                count += len(item)
    return count
