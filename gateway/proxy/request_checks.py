"""What the gateway refuses about a request before reading its body as JSON.

The decision is taken on the body's bytes read as UTF-8 JSON; anything that
would let the upstream read another request from the same bytes (a model
named in the query string, a compressed body, another charset) is a 400
before the body is parsed. Used by the chat pipeline, stored-response calls
and Message Batches alike.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from gateway.proxy.errors import ProxyError


def check_query(query_string: bytes) -> None:
    """Refuse (400) a query string that names a model.

    The decision is taken on the body's ``model``; the query string is
    forwarded as it came (Anthropic's SDK sends ``?beta=true``). An upstream
    that honoured ``?model=`` would serve a model nobody decided on (the
    LiteLLM allow-list bypass, BerriAI/litellm#41810), so it is not accepted.
    """
    for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name.strip().lower() == "model":
            raise ProxyError(
                400, "the model is named in the request body; a 'model' query parameter is "
                "not accepted", param="model",
            )


_UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii"})


def check_encoding(content_type: str | None, content_encoding: str | None) -> None:
    """Refuse (400) a body the upstream could read as another request than the gateway.

    The gateway decides on the bytes read as UTF-8 JSON, the only encoding
    JSON has (RFC 8259 section 8.1), and forwards them as ``application/json``
    (``headers.upstream_request_headers``). A declared charset other than
    UTF-8 (UTF-7 can hide a second ``"model"`` in what reads as one string)
    or a compressed body would be read differently upstream: refused.
    """
    if content_encoding is not None:
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        if any(c != "identity" for c in codings):
            raise ProxyError(
                400,
                f"Content-Encoding '{content_encoding}' is not accepted; send the JSON body "
                "uncompressed",
            )
    if content_type:
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            charset = value.strip().strip('"').lower()
            if name.strip().lower() == "charset" and charset not in _UTF8_CHARSETS:
                raise ProxyError(
                    400, f"charset '{charset}' is not accepted; a JSON body must be UTF-8"
                )
