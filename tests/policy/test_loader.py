"""Loader: every broken bundle in the corpus is refused with file:line field: message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.policy.loader import PolicyLoadError, load_bundle, load_dir
from gateway.policy.schema import json_schema
from tests.policy.conftest import MINIMAL, POLICIES, write_bundle

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_bundles"
CORPUS = sorted(p for p in BAD.iterdir() if p.is_dir())


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("bundle_dir", CORPUS, ids=[p.name for p in CORPUS])
def test_bad_bundle_is_refused_with_every_expected_error(bundle_dir: Path) -> None:
    result = load_dir(bundle_dir)
    assert not result.ok and result.bundle is None and result.version is None
    errors = [str(e) for e in result.errors]
    expected = [x for x in (bundle_dir / "expected.txt").read_text().splitlines() if x.strip()]
    assert expected, "expected.txt must not be empty"
    for want in expected:
        assert any(want in got for got in errors), f"{want!r} not in {errors}"
    with pytest.raises(PolicyLoadError) as info:
        load_bundle(bundle_dir)
    assert expected[0] in str(info.value)


def test_default_bundle_is_valid() -> None:
    result = load_dir(POLICIES)
    assert result.ok, [str(e) for e in result.errors]
    assert result.warnings == ()
    assert result.version is not None and len(result.version) == 64
    bundle = result.bundle
    assert bundle is not None
    groups = bundle.country_groups
    # Syria's comprehensive program ended 2025-07-01; it stays in the EAR groups.
    assert "SY" not in groups["comprehensively_sanctioned"].countries
    assert "SY" in groups["ear_e1"].countries and "SY" in groups["ear_d5"].countries
    assert set(groups["comprehensively_sanctioned"].regions) == {"UA-43", "UA-40", "UA-14", "UA-09"}
    # HK maps into every CN set; Cuba is E:2 only; Iran is not in D:1; Macau not in D:5.
    for name, group in groups.items():
        if "CN" in group.countries:
            assert "HK" in group.countries, name
    assert "CU" not in groups["ear_e1"].countries and groups["ear_e2"].countries == ["CU"]
    assert "IR" not in groups["ear_d1"].countries
    assert "MO" not in groups["ear_d5"].countries and "MO" in groups["ear_adv_computing"].countries
    assert len(groups["ear_d5"].countries) == 23 and len(groups["ear_d1"].countries) == 25
    for name, group in groups.items():
        assert group.source and group.as_of, f"{name} must cite source and as_of"


def test_version_ignores_file_layout_and_formatting(tmp_path: Path) -> None:
    rules = (
        "rules:\n  - {id: a, effect: allow, when: {model_allowed_for_tier: true}}\n"
        "  - {id: b, effect: deny, when: {model_in: [big]}}\n"
    )
    one = write_bundle(tmp_path / "one", dict(MINIMAL, **{"rules.yaml": rules}))
    # Same content: other file names, block style, comments, rules split and reordered.
    two = write_bundle(
        tmp_path / "two",
        {
            "00-all.yml": MINIMAL["tiers.yaml"] + "# comment\n" + MINIMAL["models.yaml"],
            "r1.yaml": "rules:\n  - id: b\n    effect: deny\n    when:\n      model_in: [big]\n",
            "r2.yaml": "rules:\n  - id: a\n    effect: allow   # entitlement\n"
            "    when: {model_allowed_for_tier: true}\n",
        },
    )
    v1, v2 = load_dir(one).version, load_dir(two).version
    assert v1 is not None and v1 == v2
    changed = write_bundle(
        tmp_path / "three",
        dict(MINIMAL, **{"rules.yaml": rules.replace("model_in: [big]", "model_in: [small]")}),
    )
    assert load_dir(changed).version != v1


def test_tests_directory_is_not_merged(tmp_path: Path) -> None:
    d = write_bundle(tmp_path / "b", dict(MINIMAL))
    write_bundle(d / "tests", {"cases.yaml": "cases: []\n"})
    assert load_dir(d).ok


def test_unreachable_model_is_a_warning_not_an_error(tmp_path: Path) -> None:
    d = write_bundle(
        tmp_path / "b", dict(MINIMAL, **{"more.yaml": "models:\n  orphan: {tiers: []}\n"})
    )
    result = load_dir(d)
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "more.yaml:2 models.orphan: model 'orphan' is not reachable from any tier"
    ]


def test_a_capability_entry_without_the_defaults_token_limits_is_a_warning(
    tmp_path: Path,
) -> None:
    # Requests carrying `agentic` are metered on its entry instead of
    # `default`: with only a request rate there, one dummy tool escapes every
    # token limit of the tier.
    quotas = (
        "quotas:\n"
        "  enterprise:\n"
        "    default: {requests_per_minute: 60, tokens_per_minute: 1000}\n"
        "    agentic: {requests_per_minute: 10}\n"
        "    default_max_tokens: 100\n"
        "  public:\n"
        "    default: {requests_per_minute: 5, tokens_per_day: 100}\n"
        "    agentic: {requests_per_minute: 0}\n"
        "    default_max_tokens: 100\n"
    )
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"quotas.yaml": quotas}))
    result = load_dir(d)
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "quotas.yaml:4 quotas.enterprise.agentic: 'agentic' sets no token limit while "
        "'default' does (tokens_per_minute): requests carrying 'agentic' are metered on "
        "this entry only, so they have no token limit"
    ]  # public.agentic is closed (0): nothing to escape into


def test_token_limits_without_a_default_output_bound_are_a_warning(tmp_path: Path) -> None:
    # Without default_max_tokens a request that names no bound goes upstream
    # unbounded (facts.with_output_bound); a tier with no token limit at all
    # has nothing to overdraw and is not warned about.
    quotas = (
        "quotas:\n"
        "  enterprise:\n"
        "    default: {requests_per_minute: 60}\n"
        "    agentic: {requests_per_minute: 10, tokens_per_minute: 1000}\n"
        "  public:\n"
        "    default: {requests_per_minute: 5}\n"
    )
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"quotas.yaml": quotas}))
    result = load_dir(d)
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "quotas.yaml:2 quotas.enterprise: token limits but no 'default_max_tokens': a "
        "request that names no max_tokens is forwarded unbounded, reserves only its input "
        "and never matches max_tokens_over"
    ]


def test_missing_directory(tmp_path: Path) -> None:
    result = load_dir(tmp_path / "nope")
    assert not result.ok and "not a directory" in str(result.errors[0])


def test_json_schema_describes_conditions() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    cond = schema["$defs"]["Condition"]["properties"]
    for key in (
        "citizenship_in",
        "origin_unknown",
        "controlled_by_in",
        "model_allowed_for_tier",
        "any",
        "all",
        "not",
        "sanctions_status_in",
        "messages_over",
    ):
        assert key in cond
    assert schema["$defs"]["Rule"]["additionalProperties"] is False
    assert '"from"' in text and "fail_open" in text


def test_norway_is_not_false(tmp_path: Path) -> None:
    # YAML 1.1 reads NO/ON/YES as booleans; policy files use YAML 1.2 booleans.
    d = write_bundle(
        tmp_path / "b",
        dict(MINIMAL, **{"groups.yaml": "country_groups:\n  nordics: {countries: [NO, SE]}\n"}),
    )
    result = load_dir(d)
    assert result.ok, [str(e) for e in result.errors]
    assert result.bundle is not None
    assert result.bundle.country_groups["nordics"].countries == ["NO", "SE"]


def test_empty_sections_are_empty(tmp_path: Path) -> None:
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": "rules:\ncountry_groups:\n"}))
    result = load_dir(d)
    assert result.ok and result.bundle is not None and result.bundle.rules == []


def test_timestamps_parse_from_yaml_and_rfc3339_strings(tmp_path: Path) -> None:
    # Strict types must not reject the date forms officers write: an unquoted
    # YAML timestamp and a quoted RFC 3339 string (both with a time zone).
    rules = (
        "rules:\n"
        "  - id: a\n    effect: allow\n    when: {model_allowed_for_tier: true}\n"
        "    effective: {from: 2026-06-13T04:00:00Z, until: '2027-01-01T00:00:00+01:00'}\n"
        "    as_of: 2026-07-23\n"
    )
    result = load_dir(write_bundle(tmp_path / "b", dict(MINIMAL, **{"rules.yaml": rules})))
    assert result.ok, [str(e) for e in result.errors]
    assert result.bundle is not None
    effective = result.bundle.rules[0].effective
    assert effective is not None and effective.from_ is not None and effective.until is not None
    assert effective.from_.isoformat() == "2026-06-13T04:00:00+00:00"
    # Held in UTC: one instant, one bundle version, whatever the notation.
    assert effective.until.isoformat() == "2026-12-31T23:00:00+00:00"


def test_failed_items_cause_no_follow_on_errors() -> None:
    # Exactly the expected errors: a group, model, tier or capability that
    # failed its type check is still defined, so rules naming it get no
    # misleading "unknown ..." error; a union error is not printed twice.
    bundle_dir = BAD / "failed_item_still_defined"
    expected = [x for x in (bundle_dir / "expected.txt").read_text().splitlines() if x.strip()]
    assert sorted(str(e) for e in load_dir(bundle_dir).errors) == sorted(expected)


def test_unparsable_file_causes_no_unknown_name_errors(tmp_path: Path) -> None:
    models = MINIMAL["models.yaml"].replace("  big: {tiers", "\tbig: {tiers")
    rules = "rules:\n  - {id: a, effect: deny, when: {model_in: [big, small]}}\n"
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"models.yaml": models, "rules.yaml": rules}))
    errors = [str(e) for e in load_dir(d).errors]
    assert len(errors) == 1 and "models.yaml:3: YAML syntax error" in errors[0], errors


def test_a_group_with_china_but_not_hong_kong_is_a_warning(tmp_path: Path) -> None:
    # Since 2020-12-23 the EAR no longer treats Hong Kong as a destination of
    # its own (regimes-and-kyc.md: "HK maps to CN everywhere"): a group an
    # officer writes with CN alone lets a Hong Kong origin, citizen or owner
    # through every rule that names it. Deliberate or not, validate says so.
    groups = (
        "country_groups:\n"
        "  china_only: {countries: [CN, RU]}\n"
        "  greater_china: {countries: [CN, HK, MO]}\n"
        "  elsewhere: {countries: [HK]}\n"
    )
    d = write_bundle(tmp_path / "b", dict(MINIMAL, **{"groups.yaml": groups}))
    result = load_dir(d)
    assert result.ok
    assert [str(w) for w in result.warnings] == [
        "groups.yaml:2 country_groups.china_only: lists CN but not HK: the EAR has "
        "treated Hong Kong as China since 2020-12-23 (15 CFR 740 Supp. No. 1), so "
        "a Hong Kong origin, citizen or owner is outside this group; add HK unless "
        "that is intended"
    ]
