"""Shared fixtures for policy tests: the default bundle and small bundle builders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.geo.origin import Origin
from gateway.identity.principal import Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.loader import load_bundle

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
AFTER_DIRECTIVE = datetime(2026, 6, 14, tzinfo=UTC)
BEFORE_DIRECTIVE = datetime(2026, 6, 1, tzinfo=UTC)

MINIMAL = {
    "tiers.yaml": """\
kyc_levels: [none, kyb_verified]
tiers:
  public: {min_kyc: none}
  enterprise: {min_kyc: kyb_verified}
""",
    "models.yaml": """\
models:
  small: {tiers: [public, enterprise]}
  big: {tiers: [enterprise]}
capabilities:
  agentic:
    when: {has_tools: true}
""",
}


@pytest.fixture(scope="session")
def default_bundle() -> CompiledBundle:
    return load_bundle(POLICIES)


def write_bundle(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., CompiledBundle]:
    counter = iter(range(1000))

    def build(rules: str, quotas: str = "", extra: dict[str, str] | None = None) -> CompiledBundle:
        files = dict(MINIMAL, **{"rules.yaml": rules})
        if quotas:
            files["quotas.yaml"] = quotas
        files.update(extra or {})
        return load_bundle(write_bundle(tmp_path / f"b{next(counter)}", files))

    return build


def principal(**kw: object) -> Principal:
    kw.setdefault("customer_id", "c1")
    for key in ("citizenships", "attributes"):
        if key in kw:
            kw[key] = frozenset(kw[key])  # type: ignore[arg-type]
    return Principal(**kw)  # type: ignore[arg-type]


def facts(
    model: str = "haiku-lite",
    country: str | None = "US",
    region: str | None = None,
    caps: frozenset[str] = frozenset(),
    endpoint: str = "/v1/chat/completions",
    **body: object,
) -> RequestFacts:
    return RequestFacts(
        endpoint=endpoint,
        api="openai",
        body=BodyFacts(model=model, **body),  # type: ignore[arg-type]
        origin=Origin("203.0.113.9", country, region),
        capabilities=caps,
    )
