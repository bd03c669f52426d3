"""How deeply a request body may nest, and the bytes forwarded for it.

orjson reads JSON nested up to 1,024 levels of arrays and objects but writes at
most 254, and the classifiers walk a body recursively (``body._text_of``, about
1,000 levels before Python's recursion limit). A body between those depths
parsed, then raised out of the decide stage: an unrecorded 500, outside both
APIs' error shapes, with a traceback of a thousand frames in the log, for any
customer to produce at will. It is a recorded 400 instead.

Caught, not measured: a plain request pays nothing for the check.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.jsonbytes import dumps_kept
from gateway.proxy.errors import ProxyError

MAX_NESTING = 254
"""The deepest nesting orjson writes: a body nested deeper cannot be forwarded as decided."""


def too_deep() -> ProxyError:
    return ProxyError(400, f"request body is nested more than {MAX_NESTING} levels deep")


def forwardable(body: dict[str, Any]) -> bytes:
    """``body`` re-serialised for the upstream (compact, in an allocation of its
    own length: ``gateway.jsonbytes``); a 400 when nested too deeply."""
    try:
        return dumps_kept(body)
    except orjson.JSONEncodeError:  # parsed JSON can fail only one way: "Recursion limit reached"
        raise too_deep() from None
