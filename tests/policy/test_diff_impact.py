"""diff_bundles and impact(), called directly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.policy.compiled import compile_bundle
from gateway.policy.diff import diff_bundles
from gateway.policy.impact import impact
from gateway.policy.loader import load_dir
from gateway.policy.replay import replay_facts
from tests.policy.conftest import AFTER_DIRECTIVE, MINIMAL, facts, principal, write_bundle


def _load(path: Path):  # type: ignore[no-untyped-def]
    result = load_dir(path)
    assert result.ok, result.errors
    return result


def test_diff_every_section(tmp_path: Path) -> None:
    old = _load(
        write_bundle(
            tmp_path / "old",
            dict(
                MINIMAL,
                **{
                    "rules.yaml": "rules:\n"
                    "  - {id: a, effect: allow, when: {model_allowed_for_tier: true}}\n"
                    "  - {id: gone, effect: deny, when: {model_in: big}}\n",
                    "quotas.yaml": "quotas:\n  public:\n    default: {requests_per_minute: 10}\n",
                    "groups.yaml": "country_groups:\n  g: {countries: [CU, IR]}\n",
                },
            ),
        )
    )
    new = _load(
        write_bundle(
            tmp_path / "new",
            {
                "tiers.yaml": MINIMAL["tiers.yaml"].replace(
                    "enterprise: {min_kyc: kyb_verified}", "enterprise: {min_kyc: none}"
                ),
                "models.yaml": MINIMAL["models.yaml"].replace(
                    "big: {tiers: [enterprise]}", "big: {tiers: [enterprise, public]}"
                ),
                "rules.yaml": "rules:\n"
                "  - {id: a, effect: allow, when: {model_allowed_for_tier: true}}\n"
                "  - {id: fresh, effect: deny, when: {origin_in: g}}\n",
                "quotas.yaml": "quotas:\n  public:\n    default: {requests_per_minute: 20}\n"
                "    agentic: {requests_per_minute: 0}\n",
                "groups.yaml": "country_groups:\n  g: {countries: [CU, KP], regions: [UA-43]}\n",
            },
        )
    )
    assert old.bundle is not None and new.bundle is not None
    text = "\n".join(str(c) for c in diff_bundles(old.bundle, new.bundle))
    for expected in (
        "rules: removed gone",
        "rules: added fresh",
        '"origin_in": "g"',
        "country_groups: changed g",
        "countries: added KP; removed IR",
        "regions: added UA-43",
        "tiers: changed enterprise",
        "min_kyc: kyb_verified -> none",
        "models: changed big",
        "tiers: added public",
        "quotas: changed public",
        "default.requests_per_minute: 10 -> 20",
        "agentic.requests_per_minute: (none) -> 0",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert diff_bundles(old.bundle, old.bundle) == []


def test_impact_counts_flips_by_rule_model_tier_country(default_bundle) -> None:  # type: ignore[no-untyped-def]
    de = principal(
        customer_id="de", tier="enterprise", kyc_level="kyb_verified", citizenships={"DE"}
    )
    us = principal(
        customer_id="us", tier="enterprise", kyc_level="kyb_verified", citizenships={"US"}
    )
    before = AFTER_DIRECTIVE - timedelta(days=30)
    records = [
        {
            "id": "1",
            "ts": before,
            "decision": "allow",
            "facts": replay_facts(de, facts("fable-5", "DE")),
        },
        {
            "id": "2",
            "ts": before,
            "decision": "allow",
            "facts": replay_facts(us, facts("fable-5", "US")),
        },
        {
            "id": "3",
            "ts": before,
            "decision": "deny",
            "facts": replay_facts(us, facts("haiku-lite", "US")),
        },
        {"id": "4", "ts": before, "decision": "allow"},  # no facts: skipped
        {"id": "5", "decision": "allow", "facts": replay_facts(us, facts())},  # no ts: skipped
    ]
    at_record_time = impact(records, default_bundle)
    assert (at_record_time.total, at_record_time.skipped) == (5, 2)
    assert (at_record_time.to_deny, at_record_time.to_allow) == (0, 1)  # record 3 flips to allow
    report = impact(records, default_bundle, at=AFTER_DIRECTIVE)  # record 5 is usable now
    assert report.skipped == 1
    assert report.to_deny == 1 and report.to_allow == 1 and report.unchanged == 2
    assert report.by_rule["directive-frontier-us-persons-only"] == 1
    assert report.by_model == {"fable-5": 1, "haiku-lite": 1}
    assert report.by_country == {"DE": 1, "US": 1}
    assert report.by_tier == {"enterprise": 2}
    assert {f.record_id for f in report.examples} == {"1", "3"}


def test_impact_uses_candidate_bundle(tmp_path: Path, default_bundle) -> None:  # type: ignore[no-untyped-def]
    us = principal(
        customer_id="us", tier="enterprise", kyc_level="kyb_verified", citizenships={"US"}
    )
    records = [
        {
            "id": "1",
            "ts": AFTER_DIRECTIVE,
            "decision": "allow",
            "facts": replay_facts(us, facts("haiku-lite", "US")),
        }
    ]
    assert impact(records, default_bundle).flipped == 0
    strict = _load(
        write_bundle(
            tmp_path / "strict",
            {
                **{p.name: p.read_text() for p in Path(default_bundle_dir()).glob("*.yaml")},
                "zz-freeze.yaml": "rules:\n"
                "  - {id: freeze, effect: deny, when: {model_in: haiku-lite}}\n",
            },
        )
    )
    assert strict.bundle is not None and strict.version is not None
    report = impact(records, compile_bundle(strict.bundle, strict.version))
    assert report.to_deny == 1 and report.by_rule == {"freeze": 1}


def default_bundle_dir() -> Path:
    from tests.policy.conftest import POLICIES

    return POLICIES


def test_impact_replays_only_policy_outcomes_and_counts_per_version(default_bundle) -> None:  # type: ignore[no-untyped-def]
    # Replaying a bundle against its own records must show no flips: a 429
    # (quota) or 401 is no policy deny, and records decided under an older
    # version are counted apart, so drift is not read as the candidate's doing.
    us = principal(
        customer_id="us", tier="enterprise", kyc_level="kyb_verified", citizenships={"US"}
    )
    own, older = default_bundle.version, "0" * 64
    served = replay_facts(us, facts("haiku-lite", "US"))

    def rec(i: int, decision: str, status: int, version: str) -> dict[str, object]:
        return {
            "id": str(i),
            "ts": AFTER_DIRECTIVE,
            "decision": decision,
            "status": status,
            "policy_version": version,
            "facts": served,
        }

    records = [
        rec(1, "allow", 200, own),
        rec(2, "deny", 429, own),  # quota exhausted: not a policy decision
        rec(3, "deny", 401, own),
        rec(4, "deny", 403, older),  # an older bundle's deny: drift
    ]
    report = impact(records, default_bundle)
    assert report.not_policy == 2 and report.not_policy_by_status == {"429": 1, "401": 1}
    assert (report.unchanged, report.to_allow, report.to_deny) == (1, 1, 0)
    assert report.by_version[own].replayed == 1 and report.by_version[own].flipped == 0
    assert report.by_version[older].replayed == 1 and report.by_version[older].to_allow == 1
    assert [(f.record_id, f.policy_version) for f in report.examples] == [("4", older)]


def _directive(tmp_path: Path, name: str, effective: str):  # type: ignore[no-untyped-def]
    rules = (
        "rules:\n"
        "  - {id: a, effect: allow, when: {model_allowed_for_tier: true}}\n"
        f"  - {{id: freeze, effect: deny, when: {{model_in: [big]}}, effective: {effective}}}\n"
    )
    return _load(write_bundle(tmp_path / name, dict(MINIMAL, **{"rules.yaml": rules})))


def test_one_instant_in_two_notations_is_one_version_and_a_move_shows_in_utc(
    tmp_path: Path,
) -> None:
    utc = _directive(tmp_path, "utc", '{from: "2026-06-13T03:00:00Z"}')
    offset = _directive(tmp_path, "offset", '{from: "2026-06-13T04:00:00+01:00"}')
    assert utc.version == offset.version
    moved = _directive(tmp_path, "moved", '{from: "2026-06-13T04:00:00-02:00"}')
    assert moved.bundle is not None and utc.bundle is not None
    text = "\n".join(str(c) for c in diff_bundles(utc.bundle, moved.bundle))
    assert "2026-06-13T03:00:00Z -> 2026-06-13T06:00:00Z" in text, text


def test_a_bare_date_or_a_number_as_an_effective_time_says_what_to_write(
    tmp_path: Path,
) -> None:
    for name, effective, message in (
        ("date", "{from: 2026-06-13}",
         "a date without a time of day: 2026-06-13 (write the instant, e.g. "
         "2026-06-13T00:00:00Z)"),
        ("number", "{from: 1781323200}",
         "a number is not a date-time: 1781323200 (write RFC 3339"),
    ):
        rules = (
            "rules:\n"
            f"  - {{id: freeze, effect: deny, when: {{model_in: [big]}}, effective: {effective}}}\n"
        )
        result = load_dir(write_bundle(tmp_path / name, dict(MINIMAL, **{"rules.yaml": rules})))
        assert not result.ok
        errors = "\n".join(map(str, result.errors))
        assert "rules.yaml:2 rules[0].effective.from" in errors, errors
        assert message in errors, errors
