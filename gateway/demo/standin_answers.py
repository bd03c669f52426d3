"""What every stand-in answer shares: the fixed reply, SSE framing and the
test-control headers that shape an answer (``x-standin-status``,
``x-standin-output-tokens``)."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from aiohttp import web

REPLY = "Hello from the stand-in model."
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 529: "overloaded_error",
}


def sse(name: str | None, data: dict[str, Any]) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def stream_chunks(request: web.Request) -> int:
    """How many content chunks a streamed answer has (``x-standin-chunks``, 5)."""
    return max(1, int(request.headers.get("x-standin-chunks", "5")))


def output_tokens(request: web.Request, default: int) -> int:
    return int(request.headers.get("x-standin-output-tokens", str(default)))


def forced_status(request: web.Request) -> web.Response | None:
    status = request.headers.get("x-standin-status")
    if status is None:
        return None
    code = int(status)
    headers = {"x-should-retry": "false"} if code == 400 else {}
    if code in (429, 529):
        headers["retry-after"] = "7"
    if request.path.startswith("/v1/messages"):
        kind = _ANTHROPIC_ERRORS.get(code, "api_error")
        headers["request-id"] = "req_standin_error"
        doc: dict[str, Any] = {
            "type": "error",
            "error": {"type": kind, "message": f"forced by test ({kind})"},
            "request_id": "req_standin_error",
        }
    else:
        headers["x-request-id"] = "req_standin_error"
        doc = {"error": {"message": "forced by test", "type": "api_error", "param": None,
                         "code": f"standin_{code}"}}
    return web.Response(
        status=code, body=orjson.dumps(doc), content_type="application/json", headers=headers
    )


def container_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """Anthropic's ``container`` of an answer: the one the request names (an
    id, or an object with one), else a new one when it has a code execution
    tool; None when no container tool was used."""
    given = body.get("container")
    if isinstance(given, dict):
        given = given.get("id")
    if not isinstance(given, str) and not _codes(body):
        return None
    container_id = given if isinstance(given, str) else "container_" + secrets.token_hex(12)
    return {"id": container_id, "expires_at": "2030-01-01T00:00:00Z"}


def _codes(body: dict[str, Any]) -> bool:
    tools = body.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and str(t.get("type", "")).startswith("code_execution") for t in tools
    )


def code_execution_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """With a code execution tool, the blocks of one bash run that wrote a file:
    Anthropic stores such a file in the account (a new ``file_id`` each run)."""
    if not _codes(body):
        return []
    use_id = "srvtoolu_" + secrets.token_hex(8)
    return [
        {"type": "server_tool_use", "id": use_id, "name": "bash_code_execution",
         "input": {"command": "echo hi > out.txt"}},
        {"type": "bash_code_execution_tool_result", "tool_use_id": use_id,
         "content": {"type": "bash_code_execution_result", "stdout": "", "stderr": "",
                     "return_code": 0,
                     "content": [{"type": "bash_code_execution_output",
                                  "file_id": "file_" + secrets.token_hex(12)}]}},
    ]


def chat_audio(body: dict[str, Any]) -> dict[str, Any]:
    """A chat message's ``audio`` member when the request asks for audio (a new id each time)."""
    if not isinstance(body.get("audio"), dict):
        return {}
    return {"audio": {"id": "audio_" + secrets.token_hex(12), "data": "",
                      "expires_at": 1900000000, "transcript": REPLY}}
