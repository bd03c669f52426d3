"""Parse a request body once into ``BodyFacts`` and the bytes to forward.

Both API shapes are read here: OpenAI chat/completions/responses/embeddings and
Anthropic messages. Every string the body carries (messages, system prompts,
tool calls and definitions, documents; not ids, roles or binary data) is
joined into ``prompt_text`` for the capability classifiers; it lives only as
long as the request and is never stored (the audit log keeps its SHA-256).

What is decided is what is forwarded: the upstream gets the parsed body
re-serialised (``orjson.dumps``, compact), not the client's bytes. JSON
parsers disagree on bodies the RFC leaves open: with ``"model"`` given twice,
orjson keeps the last and many parsers the first, so forwarding the client's
bytes let a caller be decided on ``haiku-lite`` and served ``fable-5`` (or hide
a cyber prompt in a first ``messages``). Re-serialising costs ~0.3 us for a
small body and ~30 us for a 256 KB one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from gateway.policy.facts import OUTPUT_BOUND_FIELDS, BodyFacts, with_output_bound
from gateway.proxy.errors import ProxyError
from gateway.proxy.nesting import forwardable, too_deep
from gateway.proxy.references import (
    ID_KEYS,
    PROMPT,
    Reference,
    named_audio,
    named_ids,
    request_references,
    stored_prompt,
)
from gateway.proxy.stored_state import continued_ids
from gateway.proxy.textfold import fold
from gateway.proxy.token_ids import token_ids
from gateway.proxy.trace_flags import asks_logprobs, asks_reasoning

# A rough, tokenizer-free estimate (about 4 bytes per token for English text);
# it only sizes the token reservation, which settles to the real usage after.
BYTES_PER_TOKEN = 4


# Keys whose values are never prompt text: ids, roles, block types, media
# types, cache hints, thinking signatures and binary payloads (base64 images,
# files, audio). Everything else a client sends is read, so that text cannot
# dodge the classifiers by moving to a field they do not look at (a document
# block's ``source.data``, a tool call's ``arguments``, a tool description).
_NOT_TEXT = frozenset(
    {
        "type",
        "role",
        "id",
        "model",
        "user",
        "metadata",
        "service_tier",
        "tool_call_id",
        "tool_use_id",
        "call_id",
        "media_type",
        "cache_control",
        "signature",
        "image_url",
        "url",
        "file_data",
        "file_id",
        "file_ids",
        "vector_store_ids",
        "tool_choice",
        "reasoning_effort",
        "encoding_format",
        "previous_response_id",
        "prompt_cache_key",
        "safety_identifier",
    }
)


# Values a model reads whole, keys included: JSON Schemas (a function's
# ``parameters``, a tool's ``input_schema``, a structured output's ``schema``),
# a tool call's ``input`` and a stored prompt's ``variables``. Inside them a
# property may be called ``url``, ``data`` or ``type`` and its name may be a
# sentence: nothing there is an id or binary data, so nothing is skipped.
_FREE_FORM = frozenset({"parameters", "input_schema", "schema", "input", "variables"})


def _text_of(
    content: Any,
    out: list[str],
    media: list[int],
    hidden: list[str],
    refs: list[Reference],
    free: bool = False,
) -> bool:
    """Collect every string in a value (a string, a list of parts, nested blocks)
    into ``out``, and the token estimate of every image, audio or file part into
    ``media``, and every file, audio or vector store it names by id into
    ``refs`` (``gateway.proxy.references``: found by the key test this walk
    makes anyway, so a body without them pays nothing more). Inside a
    free-form value (``_FREE_FORM``) the keys, and the strings ``_NOT_TEXT``
    would skip elsewhere, go to ``hidden``: classified, but not part of
    ``prompt_sha256``, which keeps its meaning across versions.

    True if the value carries tool use (``_is_tool_part``, ``_TOOL_USE_KEYS``,
    ``_TOOL_ROLES``)."""
    if isinstance(content, str):
        out.append(content)
        return False
    used = False
    if isinstance(content, list):
        for part in content:
            used |= _text_of(part, out, media, hidden, refs, free)
    elif isinstance(content, dict):
        kind = content.get("type")
        if type(kind) is not str:  # a schema's property called "type" is no part type
            kind = None
        elif kind in _MEDIA_PARTS:
            media.append(_media_tokens(kind, content))
        elif not free and _is_tool_part(kind):  # not a schema's {"type": "x_call"}
            used = True
        for key, value in content.items():
            if free:
                hidden.append(key)
            if isinstance(value, (int, float, bool)) or value is None:
                continue
            # ``data`` is text in a text source (Anthropic documents), else base64.
            if key in _NOT_TEXT or (key == "data" and kind != "text"):
                if free:
                    # A schema's or a tool call's "file_id" names nothing upstream,
                    # but a file part does (a stored prompt's ``variables``).
                    if key == "file_id" and kind in _FILE_PARTS:
                        named_ids(key, value, refs)
                    _text_of(value, hidden, [], hidden, refs, True)
                elif key in ID_KEYS:
                    named_ids(key, value, refs)
                elif key == "role":
                    if type(value) is str and value in _TOOL_ROLES:
                        used = True
                    if "audio" in content:  # an assistant turn naming its audio answer
                        named_audio(content["audio"], refs)
                continue
            if type(value) is not str and key in _TOOL_USE_KEYS and value and not free:
                used = True
            used |= _text_of(
                value, out, media, hidden, refs, free or (key in _FREE_FORM and type(value) is dict)
            )
    return used


# Tool use in a conversation, with or without the tool definitions: replaying an
# agent's calls and their results asks the model for the agent's next step, so
# ``has_tools`` holds for it as for a request that defines tools. Chat
# completions: an assistant's ``tool_calls`` (or legacy ``function_call``) and
# ``tool`` / ``function`` role messages; Anthropic: ``tool_use``,
# ``tool_result``, ``server_tool_use``, ``mcp_tool_use``, ``*_tool_result``
# blocks; Responses: ``function_call``, ``function_call_output``,
# ``computer_call``, ``mcp_call``... items.
_TOOL_USE_KEYS = frozenset({"tool_calls", "function_call"})
_TOOL_ROLES = frozenset({"tool", "function"})
_TOOL_PART_SUFFIXES = ("tool_use", "tool_result", "_call", "_call_output")


def _is_tool_part(kind: str) -> bool:
    return kind.endswith(_TOOL_PART_SUFFIXES) or kind.startswith("mcp_")


# Part types that carry an image, audio or a file (both APIs). Their bytes are
# not text, but the model still reads them as input tokens: an image costs
# about (width x height) / 750 tokens on Anthropic, ~1,600 for the largest it
# keeps unscaled, and OpenAI's high-detail images are of the same order. The
# reservation takes that per image or audio part, and a document or file sent
# inline its decoded size at BYTES_PER_TOKEN (a text-heavy PDF page is ~1,500-
# 3,000 tokens), so parallel requests with images cannot overdraw a token window
# by far more than their reservation before they settle to real usage.
_MEDIA_PARTS = frozenset(
    {"image", "image_url", "input_image", "input_audio", "document", "file", "input_file"}
)
MEDIA_PART_TOKENS = 1_600
_FILE_PARTS = _MEDIA_PARTS | {"container_upload"}
"""Parts that name a file by ``file_id`` (an image's or document's ``source``
of type ``file`` included)."""
_INLINE_FILE_KEYS = ("data", "file_data")


def _media_tokens(kind: str, part: dict[str, Any]) -> int:
    if kind not in ("document", "file", "input_file"):
        return MEDIA_PART_TOKENS
    holder = part.get("source") or part.get("file") or part
    if not isinstance(holder, dict) or holder.get("type") == "text":
        return 0  # a text document: its text is already counted
    for key in _INLINE_FILE_KEYS:
        data = holder.get(key)
        if isinstance(data, str):
            # base64 (possibly a data: URL): 3 bytes per 4 characters.
            return max(MEDIA_PART_TOKENS, len(data) * 3 // 4 // BYTES_PER_TOKEN)
    return MEDIA_PART_TOKENS


_TOOL_KEYS = ("tools", "functions", "mcp_servers")
"""Tool definitions in either API, and Anthropic's MCP connector: tool use."""


def _has_tools(body: dict[str, Any]) -> bool:
    # Chat completions' ``web_search_options`` has the model search the web
    # without a ``tools`` array (its search models): a tool the model runs.
    search = body.get("web_search_options")
    if search is not None and not isinstance(search, dict):
        raise ProxyError(400, "'web_search_options' must be an object", param="web_search_options")
    found = search is not None
    for key in _TOOL_KEYS:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise ProxyError(400, f"'{key}' must be an array", param=key)
        found = found or bool(value)
    return found


def _max_tokens(body: dict[str, Any]) -> int | None:
    """The largest output bound the body names.

    Clients may send several (``max_tokens`` is deprecated in favour of
    ``max_completion_tokens`` on OpenAI); the largest is what an upstream may
    honour, so it is what classification (``max_tokens_over``) and the token
    reservation see: a small ``max_tokens`` beside a large
    ``max_completion_tokens`` does not dodge a long-horizon rule.
    """
    largest: int | None = None
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProxyError(400, f"'{key}' must be a non-negative integer", param=key)
        largest = value if largest is None else max(largest, value)
    return largest


def _answers(body: dict[str, Any]) -> int:
    """How many answers of up to ``max_tokens`` each the body asks for.

    ``n`` (chat and text completions), ``best_of`` (text completions: the
    upstream generates that many and bills them all, whatever ``n`` returns),
    times the prompts of a ``/v1/completions`` prompt list (a batch: one
    completion per prompt; a list of token ids is one prompt). The token
    reservation is ``max_tokens`` for each, so ``n: 8`` cannot generate eight
    times what it held against a token window.
    """
    count = 1
    for key in ("n", "best_of"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProxyError(400, f"'{key}' must be a positive integer", param=key)
        count = max(count, value)
    prompt = body.get("prompt")
    if type(prompt) is list and prompt and not isinstance(prompt[0], int):
        count *= len(prompt)
    return count


# Model names end up in the audit log's indexed ``model`` column (128 wide)
# and in metrics labels; provider names (fine-tunes included) are far shorter.
MAX_MODEL_CHARS = 128


def parse_request_body(
    raw: bytes, endpoint: str, default_max_tokens: Callable[[], int | None]
) -> tuple[BodyFacts, bytes]:
    """The facts of a request body and the bytes to forward: the body as parsed,
    bounded by ``default_max_tokens()`` (the caller's tier default, asked for only
    when the body names no bound; ``facts.with_output_bound`` says why)."""
    facts, body = _parse(raw)
    # Forwarded bytes live as long as the request: exact-size (gateway.jsonbytes).
    return _bounded(facts, body, endpoint, default_max_tokens), forwardable(body)


def parse_request_params(
    body: object, endpoint: str, default_max_tokens: Callable[[], int | None]
) -> BodyFacts:
    """The facts of a request already parsed from JSON (a Message Batch's
    ``params``), as ``parse_request_body`` reads a whole body: the same
    checks, classification inputs and output bound (written into ``body``)."""
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object")
    return _bounded(_walked(body), body, endpoint, default_max_tokens)


def _bounded(
    facts: BodyFacts,
    body: dict[str, Any],
    endpoint: str,
    default_max_tokens: Callable[[], int | None],
) -> BodyFacts:
    references = request_references(body, endpoint)
    if references:
        # A stored prompt comes first (references._responses_references): noted
        # in the record, at no cost to a body without references.
        prompt = stored_prompt(body) if references[0][0] == PROMPT else None
        facts = replace(facts, references=facts.references + references, stored_prompt=prompt)
    if "audio" in body and endpoint == "/v1/chat/completions":
        facts = replace(facts, answers_audio=True)  # its answer's audio id is bound
    if facts.max_tokens is None and endpoint in OUTPUT_BOUND_FIELDS:
        facts = with_output_bound(facts, endpoint, default_max_tokens())
        if facts.max_tokens_defaulted:
            body[OUTPUT_BOUND_FIELDS[endpoint]] = facts.max_tokens
    return facts


def parse_body(raw: bytes) -> BodyFacts:
    """The typed facts of one request body, or a 400 ``ProxyError``."""
    return _parse(raw)[0]


def _parse(raw: bytes) -> tuple[BodyFacts, dict[str, Any]]:
    if not raw:
        raise ProxyError(400, "request body is empty; a JSON object is required")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProxyError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object")
    return _walked(body), body


def _walked(body: dict[str, Any]) -> BodyFacts:
    """``_facts_of(body)``; a 400 for a body nested deeper than the walk can go
    (``gateway.proxy.nesting``)."""
    try:
        return _facts_of(body)
    except RecursionError:
        raise too_deep() from None


def _facts_of(body: dict[str, Any]) -> BodyFacts:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError(400, "'model' is required and must be a non-empty string", param="model")
    if len(model) > MAX_MODEL_CHARS or not model.isprintable():
        raise ProxyError(
            400,
            f"'model' must be at most {MAX_MODEL_CHARS} printable characters",
            param="model",
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ProxyError(400, "'stream' must be a boolean", param="stream")

    texts: list[str] = []
    hidden: list[str] = []
    media: list[int] = []
    refs: list[Reference] = []
    message_count = 0
    messages = body.get("messages")
    if messages is not None:
        if not isinstance(messages, list):
            raise ProxyError(400, "'messages' must be an array", param="messages")
        message_count = len(messages)
        if not all(isinstance(message, dict) for message in messages):
            raise ProxyError(400, "every item of 'messages' must be an object", param="messages")
    inputs = body.get("input")
    if isinstance(inputs, list):
        # The larger of the two: a decoy ``"messages": []`` beside a Responses
        # ``input`` (an upstream may ignore the field it does not know) must not
        # hide the turns from ``messages_over``.
        message_count = max(message_count, len(inputs))
    has_tools = _has_tools(body)
    tool_use = _text_of(body, texts, media, hidden, refs)
    if messages is None and message_count == 0 and texts:
        message_count = 1

    options = body.get("stream_options")
    usage_requested = isinstance(options, dict) and options.get("include_usage") is True
    prompt_text = "\n".join(texts)
    encoded = prompt_text.encode("utf-8", "surrogatepass")
    # Classified and hashed as the model reads it (textfold.py): copies of one
    # prompt perturbed with invisible or fullwidth characters share one
    # prompt_sha256 (account-farm links); ordinary text folds to itself.
    folded = fold(prompt_text)
    hashed = encoded if folded is prompt_text else folded.encode("utf-8", "surrogatepass")
    return BodyFacts(
        model=model,
        stream=stream,
        has_tools=has_tools or tool_use,
        max_tokens=_max_tokens(body),
        answers=_answers(body),
        message_count=message_count,
        logprobs=asks_logprobs(body),
        reasoning=asks_reasoning(body),
        prompt_text="\n".join((folded, fold("\n".join(hidden)))) if hidden else folded,
        prompt_sha256=hashlib.sha256(hashed).hexdigest(),
        input_tokens_estimate=len(encoded) // BYTES_PER_TOKEN + 1 + sum(media) + token_ids(body),
        stream_usage_requested=usage_requested,
        stream_options_given="stream_options" in body,
        continues=continued_ids(body),
        references=tuple(refs),
    )
