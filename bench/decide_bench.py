"""Decision latency: p50/p99 of ``decide`` for the default bundle and a large one.

    .venv/bin/python bench/decide_bench.py [--n 20000]

Targets (printed, not asserted): default bundle < 20 us p50; a generated
bundle of 1,000 rules and 200 country groups < 100 us p50. A third line runs
the default bundle with every rule also staged in report mode (``mode:
report``), the cost of report rules when a bundle has them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pycountry

from gateway.geo.origin import Origin
from gateway.identity.principal import Ownership, Principal
from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.facts import BodyFacts, RequestFacts
from gateway.policy.loader import load_bundle

NOW = datetime(2026, 6, 14, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def generated_bundle(directory: Path, rules: int = 1000, groups: int = 200) -> CompiledBundle:
    rng = random.Random(7)
    codes = sorted(c.alpha_2 for c in pycountry.countries)
    lines = ["country_groups:"]
    for g in range(groups):
        lines.append(f"  g{g}: {{countries: [{', '.join(rng.sample(codes, 12))}]}}")
    (directory / "groups.yaml").write_text("\n".join(lines) + "\n")
    models = [f"m{i}" for i in range(20)]
    (directory / "tiers.yaml").write_text(
        "kyc_levels: [none, kyb_verified]\n"
        "tiers:\n  public: {min_kyc: none}\n  enterprise: {min_kyc: kyb_verified}\n"
        "models:\n"
        + "".join(f"  {m}: {{tiers: [public, enterprise]}}\n" for m in models)
        + "capabilities:\n  agentic: {when: {has_tools: true}}\n"
        "  coding: {when: {prompt_matches: ['```', 'def \\w+\\(']}}\n"
    )
    out = ["rules:"]
    kinds = ["origin_in", "residence_in", "citizenship_in", "controlled_by_in"]
    for r in range(rules - 1):
        cond = f"{rng.choice(kinds)}: g{rng.randrange(groups)}"
        if rng.random() < 0.7:  # most rules are about one model (indexed)
            cond += f", model_in: [{rng.choice(models)}]"
        if rng.random() < 0.3:
            cond += ", tier_in: [public]"
        out.append(f"  - {{id: r{r}, effect: deny, when: {{{cond}}}}}")
    out.append("  - {id: allow, effect: allow, when: {model_allowed_for_tier: true}}")
    (directory / "rules.yaml").write_text("\n".join(out) + "\n")
    return load_bundle(directory)


def with_report_copies(directory: Path) -> CompiledBundle:
    """The default bundle plus a report-mode copy of each of its rules."""
    for path in (ROOT / "policies").glob("*.yaml"):
        (directory / path.name).write_text(path.read_text())
    rules = (ROOT / "policies" / "rules.yaml").read_text()
    (directory / "staged.yaml").write_text(
        rules.replace("  - id: ", "  - mode: report\n    id: staged-")
    )
    return load_bundle(directory)


def measure(
    bundle: CompiledBundle, cases: list[tuple[Principal, RequestFacts]], n: int
) -> tuple[float, float]:
    timings = []
    clock = time.perf_counter_ns
    for i in range(n):
        p, f = cases[i % len(cases)]
        start = clock()
        decide(p, f, bundle, NOW)
        timings.append(clock() - start)
    timings.sort()
    return statistics.median(timings) / 1000, timings[int(len(timings) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()

    default = load_bundle(ROOT / "policies")
    people = [
        Principal(
            "gov",
            tier="government",
            kyc_level="government_cleared",
            citizenships=frozenset({"US"}),
            residence="US",
        ),
        Principal(
            "de",
            tier="enterprise",
            kyc_level="kyb_verified",
            citizenships=frozenset({"DE"}),
            residence="DE",
        ),
        Principal(
            "org",
            kind="organization",
            tier="enterprise",
            kyc_level="kyb_verified",
            ownership=(Ownership("CN", 60.0),),
        ),
    ]
    reqs = [
        RequestFacts("/v1/chat/completions", "openai", BodyFacts(model=m), Origin("8.8.8.8", c))
        for m in ("haiku-lite", "fable-5", "mythos-5")
        for c in ("US", "DE", "IR")
    ]
    cases = [(p, f) for p in people for f in reqs]
    p50, p99 = measure(default, cases, args.n)
    print(
        f"default bundle ({len(default.rules)} rules):  p50 {p50:6.1f} us  p99 {p99:6.1f} us"
        f"   (target p50 < 20 us)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        staged = with_report_copies(Path(tmp))
    p50, p99 = measure(staged, cases, args.n)
    print(
        f"default + {len(staged.report_rule_ids())} report rules:  "
        f"p50 {p50:6.1f} us  p99 {p99:6.1f} us"
    )

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        big = generated_bundle(Path(tmp))
        load_s = time.perf_counter() - t0
    big_people = [
        Principal(
            "x",
            tier="enterprise",
            kyc_level="kyb_verified",
            citizenships=frozenset({c}),
            residence=c,
            ownership=(Ownership(c, 100.0),),
        )
        for c in ("US", "DE", "FR", "JP")
    ]
    big_reqs = [
        RequestFacts(
            "/v1/chat/completions", "openai", BodyFacts(model=f"m{i}"), Origin("8.8.8.8", c)
        )
        for i in range(20)
        for c in ("US", "BR", "IN")
    ]
    big_cases = [(p, f) for p in big_people for f in big_reqs]
    p50, p99 = measure(big, big_cases, args.n)
    print(
        f"generated ({len(big.rules)} rules, {len(big.groups)} groups; load {load_s:.2f} s): "
        f"p50 {p50:6.1f} us  p99 {p99:6.1f} us   (target p50 < 100 us)"
    )


if __name__ == "__main__":
    main()
