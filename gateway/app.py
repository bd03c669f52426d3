"""``create_app(settings)``: the one place where the corridor is assembled.

The lifespan builds every long-lived component (database engine, policy
holder, identifier, locator, quota meter, audit writer, upstream client,
cluster sync), starts their background tasks, and stops them in reverse order:
the audit writer last among the stores, so every acknowledged decision is
flushed. It also installs the SIGTERM drain (``gateway.ops.shutdown``).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from gateway.admin.customers import SCREENER_KEY
from gateway.admin.routers import include_admin_routers
from gateway.audit.writer import LEASE_SECONDS, build_audit_writer
from gateway.db.session import create_engine, session_factory
from gateway.db.startup import prepare_for_serving
from gateway.geo.locate import build_locator
from gateway.geo.region_blind import RegionBlindCheck
from gateway.health import router as health_router
from gateway.identity.identifier_from_settings import build_identifier
from gateway.identity.screening_summary import ListInForce
from gateway.kyc.screening import load_screener
from gateway.ops import metrics, startup_failures
from gateway.ops.auditstats import MeteredStats
from gateway.ops.changefeed import ChangeFeed
from gateway.ops.cluster import (
    ClusterAdminAuthenticator,
    ClusterPolicyHolder,
    ClusterSync,
    bus_for,
)
from gateway.ops.hangup import HangupReload
from gateway.ops.shutdown import Drainer
from gateway.policy.compiled import CompiledBundle
from gateway.policy.holder import ReloadResult
from gateway.policy.loader import canonical_content
from gateway.proxy.batch_state import BatchOwners
from gateway.proxy.live_streams import LiveStreams
from gateway.proxy.probe_counts import ProbeCounts
from gateway.proxy.probes import ProbeLimiter
from gateway.proxy.reference_owners import ReferenceOwners
from gateway.proxy.references import FILE, PROMPT, SKILL, VECTOR_STORE
from gateway.proxy.response_owners import ResponseOwners
from gateway.proxy.routes import ProxyRoutes
from gateway.proxy.upstream import UpstreamClient
from gateway.quota.meter import build_meter
from gateway.quota.peers import PEERS_KEY, UnsharedPeerWatch
from gateway.services import Services
from gateway.settings import Settings
from gateway.stages import AuditUnavailable

log = logging.getLogger("gateway")

_MAX_ERRORS = 50
_ERROR_CHARS = 500
"""Bounds on a ``policy_refused`` record: a bundle can fail in many places."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def _run_services(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        await prepare_for_serving(settings)
        engine = create_engine(settings, serving=True)
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)

        audit = build_audit_writer(settings, engine, sessions)
        audit.stats = MeteredStats()
        await audit.start()
        stack.push_async_callback(audit.stop)

        async def on_swap(old: str | None, new: CompiledBundle) -> None:
            # The bundle's canonical text rides along: its SHA-256 is the version
            # every decision names, so an auditor can retrieve the policy that
            # decided a request and prove it is that one (`gateway audit policy`).
            await audit.record_event("policy_reload", {
                "old_version": old, "new_version": new.version,
                "bundle": canonical_content(new.source)})
            metrics.policy_swapped(old, new.version)
            metrics.POLICY_RELOADS.labels("initial" if old is None else "swapped").inc()

        async def on_refused(result: ReloadResult) -> None:
            metrics.POLICY_RELOADS.labels("refused").inc()
            metrics.POLICY_RELOAD_FAILURES.inc()
            # In the signed chain too: an auditor asking why an edit (a
            # directive) never applied finds the refusal, its errors and the
            # version that went on deciding. Not waited on: a refusal must
            # not stall the watch, and the running bundle stays either way.
            payload = {"kept_version": result.version,
                       "candidate_version": result.candidate_version,
                       "errors": [e[:_ERROR_CHARS] for e in result.errors[:_MAX_ERRORS]],
                       "errors_total": len(result.errors)}  # fmt: skip
            try:
                await audit.record_event("policy_refused", payload, wait=False)
            except AuditUnavailable:
                log.error("cannot record the refused policy reload in the audit log")

        # Before the policy: every bundle it loads or swaps in is checked against
        # the geolocation (region rules it cannot give are a warning).
        locator = build_locator(settings)
        policy = ClusterPolicyHolder(settings.policy_dir, on_swap=on_swap, on_refused=on_refused,
                                     deployment_check=RegionBlindCheck(locator.blind_source))
        await policy.start(watch=settings.policy_watch)
        stack.push_async_callback(policy.stop)
        levels = policy.current.kyc_levels
        if settings.kyc_vendor_level not in levels:
            # Not fatal: own-shape webhooks and failures still work, and a reload
            # may add the level. Each vendor pass answers 503 until it does.
            log.warning("GATEWAY_KYC_VENDOR_LEVEL %r is not a KYC level of the policy "
                        "bundle (%s): vendor webhook passes will be refused",
                        settings.kyc_vendor_level, ", ".join(levels))  # fmt: skip

        identifier = build_identifier(settings, sessions)
        await identifier.start()
        stack.push_async_callback(identifier.stop)
        # Before the bus and the change feed start: no change they bring is missed.
        live_streams = LiveStreams(sessions)
        identifier.on_change(live_streams.changed)
        stack.push_async_callback(live_streams.stop)

        admin_auth = ClusterAdminAuthenticator(
            sessions, settings.admin_token, settings.cache_ttl_seconds,
            redis_url=settings.redis_url,
        )
        extras: dict[str, Any] = {"admin_auth": admin_auth}
        # SPEC 4: customers created or renamed are screened against this list.
        # Loading does not import rapidfuzz (only screening a name does), and a
        # list that cannot be loaded raises here: the worker does not start.
        screener = load_screener(settings.sanctions_list, settings.sanctions_threshold)
        if screener is not None:
            extras[SCREENER_KEY] = screener
            # A customer screened against another list or threshold is held until
            # re-screened, unless the operator turned the hold off.
            if settings.rescreen_hold:
                identifier.list_in_force = ListInForce(screener.version, screener.threshold,
                                                       datetime.now(UTC))
            log.info("sanctions list %s loaded: %d names, version %s",
                     settings.sanctions_list, len(screener.sanctions.entries),
                     screener.version)  # fmt: skip
        bus = bus_for(settings)
        if bus is not None:
            cluster = ClusterSync(bus, identifier, policy, admin_auth)
            await cluster.start()
            stack.push_async_callback(cluster.stop)
            extras["cluster"] = cluster
        if settings.change_poll_seconds > 0:
            feed = ChangeFeed(sessions, identifier, admin_auth, policy,
                              settings.change_poll_seconds)  # fmt: skip
            await feed.start()
            stack.push_async_callback(feed.stop)
            extras["change_feed"] = feed

        meter = build_meter(settings)
        stack.push_async_callback(meter.aclose)
        if settings.redis_url:
            # Imported here, as build_meter does: a worker without Redis loads none of it.
            from gateway.quota.redis_store import RedisStore
            from gateway.quota.reset_watch import CounterResetWatch

            assert isinstance(meter.store, RedisStore)

            async def on_counters_lost() -> None:
                # In the signed chain: what no gateway could put back (a process
                # that died, one the reset caught between two looks) is an
                # over-admission an auditor must be able to place.
                payload = {"event": "counters_lost",
                           "detail": "the shared quota counters were found empty (Redis "
                                     "restarted without persistence, was flushed or evicted "
                                     "keys); each gateway puts back what it admitted in the "
                                     "open windows"}
                try:
                    await audit.record_event("quota_store", payload, wait=False)
                except AuditUnavailable:
                    log.error("cannot record the quota counter reset in the audit log")

            watch = CounterResetWatch(meter.store, on_counters_lost)
            meter.store.check_generation = watch.check
            await watch.start()
            stack.push_async_callback(watch.stop)
        else:
            # In-process counters: another gateway on this database would
            # admit the same customers' full limits again. Say so, loudly.
            peers = UnsharedPeerWatch(engine, lambda: audit.node_id, utc_now,
                                      settings.quota_peer_check_seconds, LEASE_SECONDS)
            await peers.start()
            stack.push_async_callback(peers.stop)
            extras[PEERS_KEY] = peers

        probes = None
        if settings.unauthenticated_limit > 0:
            # Stopped before the audit writer (the stack unwinds in reverse):
            # its pending summaries are written while the writer still runs.
            probes = ProbeLimiter(settings.unauthenticated_limit,
                                  settings.unauthenticated_window_seconds,
                                  ProbeCounts(settings.redis_url), audit,
                                  settings.audit_ip_truncate)  # fmt: skip
            await probes.start()
            stack.push_async_callback(probes.stop)

        upstream = UpstreamClient(settings)
        await upstream.start()
        stack.push_async_callback(upstream.stop)
        if settings.demo and settings.upstream_url is None:
            from gateway.demo.standin import start_standin

            runner, port = await start_standin()
            stack.push_async_callback(runner.cleanup)
            upstream.base_url = f"http://127.0.0.1:{port}"
            log.info("demo stand-in model API on %s", upstream.base_url)

        app.state.services = Services(
            settings=settings,
            engine=engine,
            sessions=sessions,
            policy=policy,
            identifier=identifier,
            locator=locator,
            meter=meter,
            audit=audit,
            upstream=upstream,
            clock=utc_now,
            extras=extras,
            response_owners=ResponseOwners(sessions, utc_now),
            batch_owners=BatchOwners(sessions, utc_now),
            probes=probes,
            reference_owners=ReferenceOwners(
                sessions,
                utc_now,
                {
                    FILE: settings.shared_file_ids,
                    VECTOR_STORE: settings.shared_vector_store_ids,
                    SKILL: settings.shared_skill_ids,
                    # Absent when unset: prompt ids go unchecked (references.CHECKED_WHEN_LISTED).
                    **({PROMPT: settings.shared_prompt_ids} if settings.shared_prompt_ids else {}),
                },
            ),
            live_streams=live_streams,
        )
        drainer = Drainer(app.state.services, settings.shutdown_drain_seconds)
        drainer.install()
        stack.callback(drainer.uninstall)
        hangup = HangupReload(policy)
        hangup.install()
        stack.callback(hangup.uninstall)
        # At a clean exit this worker's live gauges leave the multiprocess sums.
        stack.callback(metrics.mark_process_dead, os.getpid())
        # Long-lived start-up objects never become garbage: move them out of
        # the collector's way, and collect young objects less often, which cut
        # the p99 tail of this stack from ~20 ms to ~3 ms in measurements.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        yield


def create_app(settings: Settings) -> Any:
    """The ASGI application: proxy routes in front of the FastAPI app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = False
        try:
            async with _run_services(app, settings):
                started = True
                yield
        except Exception as exc:
            # Only a failure before serving is a start-up failure: under
            # --workers N it stops the supervisor (exit 3) instead of a restart loop.
            if not started:
                startup_failures.report(exc)
            raise

    api = FastAPI(
        title="gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/admin/docs",
        openapi_url="/admin/openapi.json",
        redoc_url=None,
    )
    api.include_router(health_router)
    api.include_router(metrics.router)
    include_admin_routers(api, settings.max_body_bytes, settings.body_read_timeout_seconds)
    return ProxyRoutes(api)
