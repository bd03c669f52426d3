"""Parse a request body once into ``BodyFacts``; the bytes are forwarded as-is.

Both API shapes are read here: OpenAI chat/completions/responses/embeddings and
Anthropic messages. The text of every message is joined into ``prompt_text``
for the capability classifiers; it lives only as long as the request and is
never stored (the audit log keeps its SHA-256).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.policy.facts import BodyFacts
from gateway.proxy.errors import ProxyError

# A rough, tokenizer-free estimate (about 4 bytes per token for English text);
# it only sizes the token reservation, which settles to the real usage after.
BYTES_PER_TOKEN = 4


def _text_of(content: Any, out: list[str]) -> None:
    """Collect text from a content value: a string, a list of parts, or nested blocks."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            _text_of(part, out)
    elif isinstance(content, dict):
        text = content.get("text")
        if isinstance(text, str):
            out.append(text)
        # tool results and Responses-API items nest their text under "content"/"input"
        for key in ("content", "input", "output"):
            if key in content and not isinstance(content[key], (int, float, bool)):
                _text_of(content[key], out)


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProxyError(400, f"'{key}' must be a non-negative integer", param=key)
        return value
    return None


def parse_body(raw: bytes) -> BodyFacts:
    """The typed facts of one request body, or a 400 ``ProxyError``."""
    if not raw:
        raise ProxyError(400, "request body is empty; a JSON object is required")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProxyError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError(400, "'model' is required and must be a non-empty string", param="model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ProxyError(400, "'stream' must be a boolean", param="stream")

    texts: list[str] = []
    message_count = 0
    messages = body.get("messages")
    if messages is not None:
        if not isinstance(messages, list):
            raise ProxyError(400, "'messages' must be an array", param="messages")
        message_count = len(messages)
        for message in messages:
            if isinstance(message, dict):
                _text_of(message.get("content"), texts)
    for key in ("system", "instructions", "prompt", "input"):
        value = body.get(key)
        if value is not None:
            _text_of(value, texts)
            if key == "input" and isinstance(value, list) and messages is None:
                message_count = len(value)
    if messages is None and message_count == 0 and texts:
        message_count = 1

    options = body.get("stream_options")
    usage_requested = isinstance(options, dict) and options.get("include_usage") is True
    tools = body.get("tools") or body.get("functions")
    has_tools = bool(tools) if isinstance(tools, list) else tools is not None and bool(tools)
    prompt_text = "\n".join(texts)
    encoded = prompt_text.encode("utf-8", "surrogatepass")
    return BodyFacts(
        model=model,
        stream=stream,
        has_tools=has_tools,
        max_tokens=_max_tokens(body),
        message_count=message_count,
        prompt_text=prompt_text,
        prompt_sha256=hashlib.sha256(encoded).hexdigest(),
        input_tokens_estimate=len(encoded) // BYTES_PER_TOKEN + 1,
        stream_usage_requested=usage_requested,
        stream_options_given="stream_options" in body,
    )
