"""The chaos drill: concurrent clients against a real gateway while a fault is
injected, then the audit promise checked from the outside.

``Load`` runs N client threads (httpx, OpenAI and Anthropic shapes, streamed
and not, allowed and denied) and keeps every answer; ``check`` compares what
the stand-in upstream received (the ``x-gateway-decision-id`` of every
forwarded request) and what the clients were told with the audit log read
straight from the database, so "logged before forwarding" is judged by what
really went upstream, not by what the gateway says about itself.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

US_IP = "8.8.8.8"
ALLOWED_MODEL = "haiku-lite"
DENIED_MODEL = "mythos-5"  # not in the enterprise tier: a 403 recorded as a deny
CLIENT_TIMEOUT_S = 20.0
"""An answer (streams included) slower than this is a hang: the drill's bound."""


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    status: int  # 0: no HTTP answer at all (connection refused or reset, timeout)
    decision_id: str | None
    error_type: str | None
    elapsed: float
    failure: str | None = None  # the exception, or a stream that broke mid-way
    started: float = 0.0


@dataclass(frozen=True, slots=True)
class Shot:
    kind: str
    path: str
    model: str
    stream: bool

    @property
    def anthropic(self) -> bool:
        return self.path == "/v1/messages"


SHOTS = (
    Shot("openai", "/v1/chat/completions", ALLOWED_MODEL, False),
    Shot("openai-stream", "/v1/chat/completions", ALLOWED_MODEL, True),
    Shot("anthropic", "/v1/messages", ALLOWED_MODEL, False),
    Shot("anthropic-stream", "/v1/messages", ALLOWED_MODEL, True),
    Shot("openai-denied", "/v1/chat/completions", DENIED_MODEL, False),
    Shot("anthropic-denied", "/v1/messages", DENIED_MODEL, False),
)


def fire(client: httpx.Client, base: str, key: str, shot: Shot) -> Answer:
    body: dict[str, object] = {
        "model": shot.model,
        "max_tokens": 16,
        "stream": shot.stream,
        "messages": [{"role": "user", "content": "chaos drill"}],
    }
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
               "x-standin-chunks": "3", "x-standin-interval-ms": "20"}  # fmt: skip
    if shot.anthropic:
        headers["anthropic-version"] = "2023-06-01"
    start = time.monotonic()
    try:
        with client.stream("POST", base + shot.path, json=body, headers=headers) as response:
            raw = response.read()
            decision_id = response.headers.get("x-gateway-decision-id")
            status = response.status_code
    except httpx.HTTPError as exc:
        return Answer(shot.kind, 0, None, None, time.monotonic() - start,
                      f"{type(exc).__name__}: {exc}", start)  # fmt: skip
    error_type = None
    failure = None
    if status >= 400:
        try:
            error_type = httpx.Response(status, content=raw).json()["error"]["type"]
        except (ValueError, KeyError, TypeError):
            failure = f"error body not in the API's shape: {raw[:200]!r}"
    elif shot.stream and b"[DONE]" not in raw and b"message_stop" not in raw:
        failure = f"stream ended early: {raw[-200:]!r}"
    return Answer(shot.kind, status, decision_id, error_type, time.monotonic() - start,
                  failure, start)  # fmt: skip


@dataclass
class Load:
    """``clients`` threads firing ``SHOTS`` at ``base`` until ``stop()``."""

    base: str
    key: str
    clients: int = 16
    shots: tuple[Shot, ...] = SHOTS
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        timeout = httpx.Timeout(CLIENT_TIMEOUT_S)
        with httpx.Client(timeout=timeout) as client:
            while not self._stop.is_set():
                answer = fire(client, self.base, self.key, rng.choice(self.shots))
                with self._lock:
                    self.answers.append(answer)
                if answer.status in (0, 503):
                    time.sleep(0.02)  # no busy loop against a refusing gateway

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_S + 5)
        return list(self.answers)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.status == status)

    def wait_for(self, status: int, n: int, timeout: float = 30.0) -> None:
        """Until ``n`` answers with ``status`` have come back since this call."""
        base = self.count(status)
        deadline = time.monotonic() + timeout
        while self.count(status) - base < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {n} answers {status} within {timeout}s: "
                                     f"{summary(self.answers)}")  # fmt: skip
            time.sleep(0.05)


def summary(answers: list[Answer]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in answers:
        label = f"{a.status}" + (f":{a.error_type}" if a.error_type else "")
        out[label] = out.get(label, 0) + 1
    return out


def forwarded_ids(upstream_url: str) -> list[str]:
    """The decision id of every request the stand-in upstream received."""
    requests = httpx.get(f"{upstream_url}/_standin/requests", timeout=30).json()
    return [r["headers"].get("x-gateway-decision-id", "") for r in requests]


Verdicts = Mapping[str, tuple[str | None, int | None]]


def sqlite_verdicts(db: Path) -> dict[str, tuple[str | None, int | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT id, decision, status FROM audit_records WHERE kind = 'decision'"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def postgres_verdicts(psql: Callable[[str], str]) -> dict[str, tuple[str | None, int | None]]:
    out = psql("SELECT id, decision, status FROM audit_records WHERE kind = 'decision'")
    verdicts: dict[str, tuple[str | None, int | None]] = {}
    for line in out.splitlines():
        rid, decision, status = line.split("|")
        verdicts[rid] = (decision or None, int(status) if status else None)
    return verdicts


def problems(answers: list[Answer], forwarded: list[str], verdicts: Verdicts,
             allow_no_answer: bool = False) -> list[str]:  # fmt: skip
    """Every way the run broke the audit promise, as readable lines (empty: held)."""
    found: list[str] = []
    for rid in forwarded:
        if rid not in verdicts:
            found.append(f"upstream received {rid or '(no decision id)'}, not in the audit log")
        elif verdicts[rid][0] != "allow":
            found.append(f"upstream received {rid}, recorded as {verdicts[rid]}")
    for a in answers:
        if a.status == 0:
            if not allow_no_answer:
                found.append(f"{a.kind}: no answer: {a.failure}")
            continue
        if a.status in (500, 501):
            found.append(f"{a.kind}: {a.status} ({a.failure or a.error_type})")
        if a.status == 503:
            wanted = "overloaded_error" if a.kind.startswith("anthropic") else "api_error"
            if a.error_type != wanted:
                found.append(f"{a.kind}: 503 with error type {a.error_type} ({a.failure})")
            continue  # its id names a record that was never written (README)
        if a.decision_id is None:
            found.append(f"{a.kind}: {a.status} without x-gateway-decision-id")
            continue
        stored = verdicts.get(a.decision_id)
        if stored is None:
            found.append(f"{a.kind}: {a.status} {a.decision_id} acknowledged, not in the log")
            continue
        verdict = "allow" if a.status == 200 else "deny"
        if stored[0] != verdict:
            found.append(f"{a.kind}: answered {a.status}, recorded {stored}")
    return found


def verify(env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``gateway audit verify --json`` against ``env``'s database and signing key."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "audit", "verify", "--json"],
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=False,
        cwd=cwd, timeout=120,
    )  # fmt: skip
