"""PolicyHolder: the bundle in force, hot-reloaded from its directory.

    holder = PolicyHolder(settings.policy_dir, on_swap=record_swap)  # loads now, or raises
    await holder.start(watch=True)      # reports the initial version, watches the directory
    bundle = holder.current             # a request keeps the snapshot it read
    result = await holder.reload()      # POST /admin/v1/policy/reload
    await holder.stop()

The constructor loads synchronously and raises ``PolicyLoadError`` naming every
file:line problem, so a gateway never starts without a valid bundle. A reload
that fails validation is refused whole: the running bundle stays, the errors
are logged and kept in ``last_error``. A swap is a plain attribute assignment
of an immutable ``CompiledBundle``, atomic for every reader. ``on_swap(old,
new)`` (``old`` a version, ``new`` the bundle) runs *before* the swap
(``old`` is None for the initial load): if it raises (the audit log cannot
record the swap), the new bundle is refused, so every bundle that ever decided
a request has an audit record; the watch then tries that reload again every
``_RETRY_UNRECORDED_S`` until it is recorded, since no file event will come to
bring it back.

``deployment_check(bundle)`` judges a bundle against this gateway's settings
rather than its files alone (``gateway.geo.region_blind``: region rules
where the geolocation gives no regions). Its warnings never refuse a bundle:
they are logged with the bundle's own warnings when it is loaded or swapped
in, and answered in ``ReloadResult.deployment_warnings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.policy import schema as s
from gateway.policy.compiled import CompiledBundle, compile_bundle
from gateway.policy.loader import PolicyLoadError, load_bundle, load_dir

log = logging.getLogger("gateway.policy")

OnSwap = Callable[[str | None, CompiledBundle], Awaitable[None]]
"""``on_swap(old_version, new_bundle)``: the whole new bundle, so the swap's audit
record can carry the policy text its version names."""
OnRefused = Callable[["ReloadResult"], Awaitable[None]]
DeploymentCheck = Callable[[s.Bundle], tuple[str, ...]]
"""Warnings about a bundle as this gateway would run it (module docstring)."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str
    """The version in force after the attempt (the old one when refused)."""
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    changed: bool = False
    candidate_version: str | None = None
    deployment_warnings: tuple[str, ...] = ()
    """The candidate's ``DeploymentCheck`` warnings (none when it did not load)."""


def _utcnow() -> datetime:
    # Only bookkeeping for the admin API; decisions never read this clock.
    return datetime.now(UTC)


class PolicyHolder:
    def __init__(
        self,
        policy_dir: Path,
        on_swap: OnSwap | None = None,
        on_refused: OnRefused | None = None,
        debounce_ms: int = 200,
        deployment_check: DeploymentCheck | None = None,
    ) -> None:
        self.policy_dir = Path(policy_dir)
        self._on_swap = on_swap
        self._on_refused = on_refused
        self._deployment_check = deployment_check
        self._debounce_ms = debounce_ms
        self._dir_identity = _identity(self.policy_dir)
        self._current: CompiledBundle = load_bundle(self.policy_dir)
        self.loaded_at: datetime | None = _utcnow()
        self.last_error: ReloadResult | None = None
        self.last_error_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._unrecorded: str | None = None
        self._retry_at = 0.0
        """Candidate version refused only because its swap could not be recorded."""
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        for warning in (*self._current.warnings, *self.deployment_warnings(self._current.source)):
            log.warning("policy warning: %s", warning)

    @property
    def current(self) -> CompiledBundle:
        return self._current

    def deployment_warnings(self, bundle: s.Bundle) -> tuple[str, ...]:
        """``bundle`` judged against this gateway's settings (no check: none)."""
        return () if self._deployment_check is None else self._deployment_check(bundle)

    async def start(self, watch: bool = True) -> None:
        """Report the initial bundle through ``on_swap(None, version)``; then watch."""
        if self._on_swap is not None:
            await self._on_swap(None, self._current)
        log.info("policy bundle %s loaded from %s", self._current.version, self.policy_dir)
        if watch and self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._watch(), name="policy-watch")

    async def stop(self) -> None:
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=5)
            except TimeoutError:
                task.cancel()

    async def reload(self) -> ReloadResult:
        """Load the directory again; swap if it validates, else keep the running bundle."""
        async with self._lock:
            old = self._current
            result = await asyncio.to_thread(load_dir, self.policy_dir)
            warnings = tuple(str(w) for w in result.warnings)
            if not result.ok or result.bundle is None or result.version is None:
                return await self._refuse(tuple(str(e) for e in result.errors), warnings, None)
            self._unrecorded = None
            deployment = self.deployment_warnings(result.bundle)
            if result.version == old.version:
                # The files are back to the running bundle: the last refusal
                # no longer describes them, so GET /admin/v1/policy drops it.
                self.last_error = None
                self.last_error_at = None
                return ReloadResult(True, old.version, (), warnings, False, result.version,
                                    deployment)  # fmt: skip
            try:
                new = compile_bundle(result.bundle, result.version, warnings)
            except Exception as exc:  # a compiler bug must not take down the running bundle
                log.exception("policy bundle %s failed to compile", result.version)
                return await self._refuse((f"compile error: {exc}",), warnings, result.version)
            if self._on_swap is not None:
                try:
                    await self._on_swap(old.version, new)
                except Exception as exc:  # cannot audit the swap: refuse it, fail closed
                    # The watch retries it (``_watch``); a retry that fails
                    # again is not logged and recorded as a new refusal each time.
                    again = self._unrecorded == new.version
                    self._unrecorded = new.version
                    if again:
                        log.debug("policy swap to %s still cannot be recorded", new.version)
                        return ReloadResult(False, old.version, (f"could not record the swap: "
                                                                 f"{exc}",), warnings, False,
                                            new.version)  # fmt: skip
                    log.exception(
                        "recording policy swap %s -> %s failed; keeping %s until it can be",
                        old.version,
                        new.version,
                        old.version,
                    )
                    return await self._refuse(
                        (f"could not record the swap: {exc}",), warnings, new.version
                    )
            self._current = new
            self.loaded_at = _utcnow()
            self.last_error = None
            self.last_error_at = None
            # The deployment's warnings too: a swap that added a Crimea region
            # rule under country-only geolocation was silent (region_blind).
            for warning in (*warnings, *deployment):
                log.warning("policy warning: %s", warning)
            log.info("policy bundle swapped %s -> %s", old.version, new.version)
            return ReloadResult(True, new.version, (), warnings, True, new.version, deployment)

    async def _refuse(
        self, errors: tuple[str, ...], warnings: tuple[str, ...], candidate: str | None
    ) -> ReloadResult:
        result = ReloadResult(False, self._current.version, errors, warnings, False, candidate)
        self.last_error = result
        self.last_error_at = _utcnow()
        log.error(
            "policy reload refused; keeping %s:\n  %s", self._current.version, "\n  ".join(errors)
        )
        if self._on_refused is not None:
            await self._on_refused(result)
        return result

    def last_refused_summary(self) -> dict[str, Any] | None:
        """For GET /admin/v1/policy: the errors of the last refused reload, if any."""
        if self.last_error is None:
            return None
        return {
            # RFC 3339 with Z, as every admin API time (gateway.kyc.schemas.rfc3339).
            "at": self.last_error_at.isoformat().replace("+00:00", "Z")
            if self.last_error_at
            else None,
            "candidate_version": self.last_error.candidate_version,
            "errors": list(self.last_error.errors),
        }

    async def _watch(self) -> None:
        """Reload on every change in the directory, for as long as the holder runs.

        inotify watches an inode, not a path: after ``rm -rf policies && cp -r
        new policies`` (or a directory swap by rename) the watch stays on the
        dead directory, reports nothing and raises nothing. So the watch wakes
        up every ``_IDENTITY_CHECK_MS`` to compare the path's (device, inode)
        with the one it armed on; when they differ, it re-arms on the new
        directory and reloads, since the new files' creation events were never
        seen. While the path is missing it waits for it to come back.
        """
        from watchfiles import awatch

        armed = self._dir_identity
        pending = False
        while not self._stop.is_set():
            identity = _identity(self.policy_dir)
            if identity is None:
                if armed is not None:
                    log.warning("policy directory %s vanished; waiting for it", self.policy_dir)
                armed, pending = None, True
                await self._pause(_IDENTITY_CHECK_MS / 1000)
                continue
            if identity != armed:
                # Not the directory the running bundle came from: it may hold a
                # changed bundle whose file events this watch never saw.
                log.warning("policy directory %s was replaced; watching it again", self.policy_dir)
                pending = True
            armed = identity
            try:
                async for changes in awatch(
                    self.policy_dir,
                    stop_event=self._stop,
                    debounce=self._debounce_ms,
                    step=50,
                    # Recursive: a YAML file added to a sub-directory refuses
                    # the bundle (files.py), so it must trigger a reload and be
                    # reported, not wait for the next top-level edit.
                    recursive=True,
                    rust_timeout=_IDENTITY_CHECK_MS,
                    yield_on_timeout=True,
                ):
                    if _identity(self.policy_dir) != armed:
                        break  # deleted or replaced: re-arm at the top of the loop
                    if changes or (pending and self._retry_due()):
                        await self.reload()
                        # A swap refused only for want of its audit record (the
                        # database is down) is retried: the edit is still on disk.
                        pending = self._unrecorded is not None
            except Exception:  # keep watching: a vanished directory must not end hot reload
                log.exception("policy directory watch failed; retrying in 1 s")
                await self._pause(1)

    def _retry_due(self) -> bool:
        if self._unrecorded is None:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + _RETRY_UNRECORDED_S
        return True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)


_IDENTITY_CHECK_MS = 500
"""How often the watch checks that the directory is still the one it watches."""
_RETRY_UNRECORDED_S = 1.0
"""How often a swap refused for want of its audit record is tried again."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


__all__ = ["PolicyHolder", "PolicyLoadError", "ReloadResult"]
