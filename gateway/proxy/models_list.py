"""``GET /v1/models``: only the models this caller may use now, in its API shape."""

from __future__ import annotations

import time

import orjson


def render_models(names: list[str], anthropic: bool) -> bytes:
    if anthropic:
        return orjson.dumps(
            {
                "data": [
                    {
                        "type": "model",
                        "id": name,
                        "display_name": name,
                        "created_at": "1970-01-01T00:00:00Z",
                    }
                    for name in names
                ],
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )
    created = int(time.time())
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "gateway"}
                for name in names
            ],
        }
    )
