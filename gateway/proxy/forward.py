"""Forward an allowed request upstream, relay the answer, then settle it
(``gateway.proxy.settle``: quota charged, outcome recorded).

Streams are relayed chunk by chunk as aiohttp hands them over, never
buffered. A watcher on the client connection cancels the relay the moment the
client goes away, which closes the upstream connection too (the upstream sees
the disconnect), releases the quota lease and records the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from gateway.ops import hooks  # ops: metrics + access log
from gateway.proxy.answer import Outcome, relay_answer
from gateway.proxy.asgi_io import JSON_CONTENT_TYPE, Receive, Scope, Send, send_response
from gateway.proxy.batch_answer import before_batch_answer
from gateway.proxy.batch_charge import ResultsUsage, results_usage
from gateway.proxy.cut import Cut, StreamPolicyWatch, cut_event
from gateway.proxy.encoding import StreamDecoder, stream_decoder
from gateway.proxy.errors import ProxyError, render_error, request_id_header
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import client_response_headers, upstream_request_headers
from gateway.proxy.reference_owners import ReferenceBinding
from gateway.proxy.settle import WITHHELD, Settlement
from gateway.proxy.stored_state import RESPONSES_ENDPOINT, ResponseBinding
from gateway.proxy.usage import SseUsageTap, ends_stream, inject_include_usage
from gateway.quota.headers import anthropic_headers
from gateway.services import Services
from gateway.stages import StageUnavailable

log = logging.getLogger("gateway.proxy")

_USAGE_INJECTABLE = frozenset({"/v1/chat/completions", "/v1/completions"})
_LISTS_ITEMS = frozenset({"retrieve", "input_items", "cancel"})
"""Calls on a stored response whose answers show its items (``reference_owners``):
a cancel answers the response with the output it has."""
_CODE_RESULT = b"code_execution_tool_result"
"""Marks the stream events that show the files code execution wrote."""
_ADDED = b'.added"'
"""Marks Responses events showing ids before the end (``output_item.added``, a cited file's
``output_text.annotation.added``): bound even if the stream never completes."""
_WATCH_NON_STREAM_AFTER = 1.0
_ACCEL_BUFFERING = (b"x-accel-buffering", b"no")
"""Sent on every streamed answer that does not carry its own (LiteLLM added the
same after users behind nginx saw SSE arrive in lumps, BerriAI/litellm#29557)."""


def _withholding(
    outcome: Outcome, hook: Callable[[object], Awaitable[bytes | None]] | None
) -> Callable[[object], Awaitable[bytes | None]] | None:
    """``hook``, noting on ``outcome`` an answer it withholds (``WITHHELD``)."""
    if hook is None:
        return None
    before = hook

    async def withholding(parsed: object) -> bytes | None:
        try:
            return await before(parsed)
        except ProxyError:
            outcome.error = WITHHELD
            raise

    return withholding


def _decoded(decoder: StreamDecoder, chunk: bytes | None) -> bytes:
    """``chunk`` decoded (None: the decoder's last bytes); corrupt data is the
    upstream breaking off its answer, as a cut connection is."""
    try:
        return decoder.flush() if chunk is None else decoder.decode(chunk)
    except zlib.error as exc:
        raise aiohttp.ClientPayloadError(f"undecodable compressed stream: {exc}") from None


class _DisconnectWatch:
    """Cancels the task relaying an answer when its client disconnects.

    Armed at once for a stream; for a non-streamed answer only after
    ``_WATCH_NON_STREAM_AFTER`` seconds: most answer sooner and are not worth
    a watcher task, but a slow one (a reasoning model thinking for minutes)
    must not go on generating, and be charged, for a client that left.
    """

    __slots__ = ("_receive", "_timer", "fired", "future", "task")

    def __init__(self, task: asyncio.Task[Any], receive: Receive, delay: float) -> None:
        self.task = task
        self.fired = False
        self.future: asyncio.Future[Any] | None = None
        self._receive = receive
        self._timer: asyncio.TimerHandle | None = None
        if delay > 0:
            self._timer = asyncio.get_running_loop().call_later(delay, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        self._timer = None
        future = asyncio.ensure_future(self._receive())
        future.add_done_callback(self._fire)
        self.future = future

    def _fire(self, _: object) -> None:
        self.fired = True
        self.task.cancel()

    def disarm(self) -> None:
        """From here on (last byte handed over) a closing connection is not a disconnect."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.future is not None:
            self.future.remove_done_callback(self._fire)

    def close(self) -> None:
        self.disarm()
        if self.future is not None:
            self.future.cancel()


class Forwarder:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._settlement = Settlement(services)

    def _gateway_headers(self, ex: Exchange) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-gateway-decision-id", ex.id.encode()),
            (b"x-gateway-policy-version", ex.policy_version.encode()),
        ]
        admission = ex.admission
        if admission is not None:
            headers.extend((k.encode(), v.encode()) for k, v in admission.headers.items())
            if ex.api == "anthropic" and admission.resets_ms:
                # Anthropic's clients read the quota under Anthropic's names.
                headers.extend(
                    anthropic_headers(admission.headers, admission.resets_ms, admission.at_ms)
                )
        return headers

    async def forward(
        self, ex: Exchange, scope: Scope, receive: Receive, send: Send, task: asyncio.Task[Any]
    ) -> None:
        """Forward ``ex``; ``task`` is the running one (the disconnect watch cancels it)."""
        services = self.services
        assert ex.principal is not None and ex.body is not None and ex.decision is not None
        raw = ex.take_request_bytes()
        drop_usage_chunk = False
        if (
            ex.body.stream
            and not ex.body.stream_usage_requested
            and ex.api == "openai"
            and ex.endpoint in _USAGE_INJECTABLE
        ):
            raw = inject_include_usage(raw, ex.body.stream_options_given)
            drop_usage_chunk = True
        identity = {
            "x-gateway-customer": ex.principal.customer_id,
            "x-gateway-tier": ex.decision.effective_tier,
            "x-gateway-decision-id": ex.id,
        }
        if services.settings.upstream_forwarded_for and ex.origin and ex.origin.client_ip:
            # The address decided on; the client's own claims are dropped (headers.py).
            identity["x-forwarded-for"] = ex.origin.client_ip
        headers = upstream_request_headers(
            scope["headers"], ex.api, services.settings.upstream_api_key, identity
        )
        path = scope["path"]
        if scope.get("query_string"):
            path += "?" + scope["query_string"].decode("latin-1")
        outcome = Outcome()
        # Watch the client and cut the upstream the moment it leaves.
        watch = _DisconnectWatch(task, receive, 0 if ex.body.stream else _WATCH_NON_STREAM_AFTER)
        detach = watch.disarm
        response: aiohttp.ClientResponse | None = None
        results: ResultsUsage | None = None  # a batch's results download: what it used
        try:
            base = services.upstream.base_for(ex.bundle, ex.body.model)
            url = services.upstream.url_for(path, base)
            t_upstream = time.perf_counter()
            response = await services.upstream.send(scope["method"], url, headers, raw)
            del raw  # sent: a stream that lasts minutes does not hold the request body
            hooks.upstream_answered(ex.endpoint, time.perf_counter() - t_upstream)  # ops hook
            outcome.status = response.status
            if response.status == 401:
                # The client's credential was the gateway's to check, and it
                # passed: the upstream refused the gateway's own key.
                log.error("the model API refused the gateway's credential (401) for %s", ex.id)
                outcome.error = "upstream_refused_gateway_credential"
                raise ProxyError(502, "the model API refused the gateway's credential")
            out_headers = client_response_headers(response.raw_headers)
            out_headers.extend(self._gateway_headers(ex))
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("text/event-stream") or (
                ex.body.stream and response.status < 300
            ):
                if not any(name == _ACCEL_BUFFERING[0] for name, _ in out_headers):
                    # nginx (and proxies that follow it) buffer a proxied answer
                    # unless told not to: a stream would reach the client in lumps.
                    out_headers.append(_ACCEL_BUFFERING)
                hooks.stream_started()  # ops hook
                try:
                    await self._relay_stream(
                        response, out_headers, send, detach, drop_usage_chunk, outcome, ex
                    )
                finally:
                    hooks.stream_ended()  # ops hook
            else:
                hook = _withholding(outcome, self._before_answer(ex, response.status))
                if ex.batch is not None:
                    results = results_usage(ex, response.status)
                tap = results.feed if results is not None else None
                await relay_answer(response, out_headers, send, detach, outcome, hook, tap)
        except ProxyError as err:
            if outcome.error is None:
                outcome.error = "upstream_timeout" if err.status == 504 else "upstream_unreachable"
            outcome.status = err.status
            detach()
            body = render_error(ex.api, err)
            answer = [JSON_CONTENT_TYPE, request_id_header(ex.api, ex.id),
                      *self._gateway_headers(ex)]  # fmt: skip
            await send_response(send, err.status, answer, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The answer had started; the client sees the stream end early.
            outcome.error = f"upstream_broke:{type(exc).__name__}"
            log.warning("upstream broke mid-answer for %s: %r", ex.id, exc)
        except asyncio.CancelledError:
            if not watch.fired:
                # Not the client leaving: the server cut the request (the
                # shutdown grace period ran out). The outcome record says so.
                outcome.error = "cancelled_by_gateway"
                raise
            watch.task.uncancel()
            outcome.error = "client_disconnected"
        finally:
            watch.close()
            if response is not None:
                response.close()
            await self._settlement.settle(ex, outcome, results)

    async def _relay_stream(
        self,
        response: aiohttp.ClientResponse,
        headers: list[tuple[bytes, bytes]],
        send: Send,
        detach: Callable[[], None],
        drop_usage_chunk: bool,
        outcome: Outcome,
        ex: Exchange,
    ) -> None:
        references = self._reference_binding(ex, response.status)
        tap = SseUsageTap(drop_usage_chunk, references.marker if references is not None else None)
        assert ex.principal is not None and ex.facts is not None
        decoder = stream_decoder(response.headers.get("content-encoding"))
        if decoder is not None:
            # Relayed decoded (gateway.proxy.encoding says why): the coding goes.
            headers = [(name, value) for name, value in headers if name != b"content-encoding"]
        policy = StreamPolicyWatch(
            self.services.policy, ex.bundle, ex.principal, ex.facts, self.services.clock
        )
        cut: Cut | None = None
        binding = self._binding(ex, response.status)
        withheld = False  # the stream's id could not be bound: nothing more goes out
        live = self.services.live_streams
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if live is not None:
            # An account change reaches the watch (gateway.proxy.live_streams).
            live.add(policy, ex.started)
        try:
            async for chunk in response.content.iter_any():
                if cut is None and policy.due():
                    cut = policy.check()
                if cut is not None and not tap.client_mid_event:
                    break  # at an event boundary: the error event can follow
                if decoder is not None:
                    chunk = _decoded(decoder, chunk)
                data = tap.feed(chunk)
                if binding is not None and data and not await binding.streamed(data):
                    withheld = True
                    break
                if data:
                    if references is not None and ends_stream(data) and tap.usage_doc is not None:
                        # Bound before the client reads the stream's end: it may
                        # name the ids (or hang up) the moment it does.
                        await references.bind_all(tap.shown_ids())
                        references = None
                    outcome.bytes_out += len(data)
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            if cut is None and decoder is not None and not withheld:
                last = tap.feed(_decoded(decoder, None))
                if last:
                    outcome.bytes_out += len(last)
                    await send({"type": "http.response.body", "body": last, "more_body": True})
            rest = b"" if cut is not None or withheld else tap.flush()
        finally:
            if live is not None:
                live.discard(policy)
            # Also when the stream is cut (client gone, upstream broke): the
            # usage seen so far is part of what ``Settlement.settle`` charges.
            outcome.usage = tap.usage if tap.seen else None
            outcome.error = outcome.error or tap.error
            if binding is not None:
                outcome.streamed_response_id = binding.streamed_id
            if references is not None and not withheld:
                # No terminal event (cut, the client gone, the upstream broke): the ids
                # shown are the caller's all the same (the write outlives a hang-up).
                await references.bind_all(tap.shown_ids())
        if withheld:
            outcome.error = WITHHELD
        if cut is not None:
            # A rule with `in_flight: cut`, or the account's change, now refuses
            # this stream: end it with an error event naming the rule; the
            # outcome record says so.
            outcome.error = cut.outcome_error
            rest = cut_event(ex.api, cut)
        detach()
        outcome.bytes_out += len(rest)
        await send({"type": "http.response.body", "body": rest, "more_body": False})

    def _binding(self, ex: Exchange, status: int) -> ResponseBinding | None:
        """For a Responses API answer: its id is bound to the caller before it is sent."""
        owners = self.services.response_owners
        if ex.endpoint != RESPONSES_ENDPOINT or status >= 300 or owners is None:
            return None
        assert ex.principal is not None and ex.body is not None
        reserved = ex.admission.reserved_tokens if ex.admission is not None else 0
        # The capabilities it was decided with: calls on it by id are decided
        # with them too (``gateway.proxy.stored_decide``).
        capabilities = ex.decision.capabilities if ex.decision is not None else frozenset()
        return ResponseBinding(
            owners, ex.principal.customer_id, ex.body.model, ex.id, reserved, capabilities
        )

    def _reference_binding(self, ex: Exchange, status: int) -> ReferenceBinding | None:
        """For an answer that may show stored items, containers, files or audio:
        a Responses create, a stored response's retrieval or input items, an
        Anthropic message whose request had tools or named a container, a chat
        completion asking for audio."""
        owners = self.services.reference_owners
        if owners is None or status >= 300 or ex.batch is not None:
            return None
        assert ex.principal is not None and ex.body is not None
        stored = ex.stored
        if (
            ex.endpoint == RESPONSES_ENDPOINT
            or (stored is not None and stored.operation in _LISTS_ITEMS)
        ):
            return ReferenceBinding(owners, ex.principal.customer_id, ex.id, _ADDED)
        if ex.endpoint == "/v1/messages" and (ex.body.has_tools or ex.body.references):
            return ReferenceBinding(owners, ex.principal.customer_id, ex.id, _CODE_RESULT)
        if ex.body.answers_audio:
            return ReferenceBinding(owners, ex.principal.customer_id, ex.id, b'"audio"')
        return None

    def _before_answer(
        self, ex: Exchange, status: int
    ) -> Callable[[object], Awaitable[bytes | None]] | None:
        """What must happen before a complete (parsed) answer reaches the client: a new
        response's id bound to its caller, a deleted one's binding dropped (the
        same for Message Batches: ``batch_answer.before_batch_answer``), the
        item and container ids it shows bound to its caller."""
        hook = self._first_before_answer(ex, status)
        references = self._reference_binding(ex, status)
        if references is None:
            return hook
        if hook is None:
            return references.relayed
        first = hook

        async def both(parsed: object) -> bytes | None:
            replaced = await first(parsed)
            await references.relayed(parsed)
            return replaced

        return both

    def _first_before_answer(
        self, ex: Exchange, status: int
    ) -> Callable[[object], Awaitable[bytes | None]] | None:
        if ex.batch is not None:
            return before_batch_answer(self.services, ex, status)
        binding = self._binding(ex, status)
        if binding is not None:
            return binding.answer
        stored = ex.stored
        owners = self.services.response_owners
        if stored is None or stored.operation != "delete" or status >= 300 or owners is None:
            return None

        async def forget(_: object) -> None:
            # The upstream confirmed the delete: from here the id is not found
            # at the gateway (no later call on it is forwarded). If the binding
            # cannot be dropped the client is still told of the delete, which
            # happened; a later call is forwarded to its owner only, and the
            # upstream answers it 404.
            try:
                await owners.unbind(stored.response_id)
            except StageUnavailable as exc:
                log.error("%s after %s", exc, ex.id)

        return forget
