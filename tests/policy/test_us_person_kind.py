"""``us_person`` is a natural person's status: an organization is never one
(docs/policy.md, "Compliance semantics and their limits"), whatever its
record holds. Decided by the engine and by the policy-test harness alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.compiled import CompiledBundle
from gateway.policy.engine import decide
from gateway.policy.loader import load_bundle
from gateway.policy.testing import run_tests
from tests.policy.conftest import AFTER_DIRECTIVE, POLICIES, facts, principal

ORG = dict(kind="organization", tier="enterprise", kyc_level="kyb_verified", residence="SG",
           incorporated_in="SG")  # fmt: skip
DIRECTIVE = "directive-frontier-us-persons-only"


@pytest.mark.parametrize(
    "fields",
    [
        {"citizenships": frozenset({"US"})},
        {"attributes": frozenset({"us_permanent_resident"})},
        {"attributes": frozenset({"us_protected_individual"})},
    ],
    ids=["citizenship", "permanent-resident", "protected-individual"],
)
def test_an_organization_is_never_a_us_person(
    default_bundle: CompiledBundle, fields: dict[str, frozenset[str]]
) -> None:
    org = principal(**ORG, **fields)
    assert org.is_us_person is False
    d = decide(org, facts(model="fable-5", country="US"), default_bundle, AFTER_DIRECTIVE)
    assert not d.allowed and d.rule_ids == (DIRECTIVE,), d
    person = principal(**{**ORG, "kind": "individual"}, **fields)
    assert person.is_us_person is True
    assert decide(person, facts(model="fable-5", country="US"), default_bundle,
                  AFTER_DIRECTIVE).allowed  # fmt: skip


def test_a_policy_test_of_an_organization_with_a_us_citizenship(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    bundle_dir.mkdir()
    for source in POLICIES.glob("*.yaml"):
        (bundle_dir / source.name).write_text(source.read_text())
    (bundle_dir / "tests").mkdir()
    (bundle_dir / "tests" / "org.yaml").write_text(f"""
cases:
  - name: a US-"national" organization is refused fable-5 after the directive
    principal: {{kind: organization, tier: enterprise, kyc_level: kyb_verified,
                citizenships: [US], residence: US, incorporated_in: US}}
    request: {{model: fable-5, origin: US}}
    at: "2026-06-14T00:00:00Z"
    expect: {{decision: deny, rule_ids: [{DIRECTIVE}]}}
""")
    results = run_tests(bundle_dir, load_bundle(bundle_dir))
    assert [(r.passed, r.detail) for r in results] == [(True, "")], results
