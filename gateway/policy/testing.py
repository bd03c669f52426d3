"""Policy tests: ``<bundle>/tests/**/*.yaml`` cases run through the real engine.

    cases:
      - name: a German enterprise loses frontier access after the directive
        principal: {tier: enterprise, kyc_level: kyb_verified, citizenships: [DE], residence: DE}
        request: {model: fable-5, origin: DE}          # origin omitted = unknown
        at: "2026-06-14T00:00:00Z"                      # default: now
        expect: {decision: deny, rule_ids: [directive-frontier-us-persons-only]}

``principal`` takes the customer record's fields (SPEC section 4), checked as
the admin API checks a record (``caserecord.py``); ``request``
takes ``model``, ``origin`` (country ``DE`` or region ``UA-43``), ``endpoint``
(default ``/v1/chat/completions``) and either ``body`` (a request body; its
capabilities are classified by the bundle, exactly as in production) or
``capabilities``. ``expect.rule_ids`` is compared as a set (exact, order-free)
and names the deciding (enforced) rules only; ``expect.report_rule_ids``, as a
set too, the report-mode rules that matched (``[]`` asserts none did);
``expect.tier`` optionally checks the effective tier.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gateway.geo.origin import Origin
from gateway.identity.principal import Ownership, Principal
from gateway.policy.caserecord import record_problems, upper_code
from gateway.policy.caserefs import case_references
from gateway.policy.compiled import CompiledBundle
from gateway.policy.decision import EVALUATION_ERROR
from gateway.policy.engine import DEFAULT_ENDPOINT, decide
from gateway.policy.facts import ApiShape, BodyFacts, RequestFacts, with_output_bound
from gateway.policy.files import test_files
from gateway.policy.loader import pydantic_message as _message
from gateway.policy.quota_plans import default_output_tokens
from gateway.policy.schema_types import AwareTimestamp
from gateway.policy.yamlsrc import DataPath, format_path, parse_file


class _Strict(BaseModel):
    # Strict like the bundle (schema.py): a test's values are YAML, typed as written.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Code = Annotated[str, BeforeValidator(upper_code)]
"""An ISO code as the admin API stores it (upper case); ``caserecord`` checks it is real."""


class OwnershipIn(_Strict):
    """An owner as the customer record gives it: an owning entity may have a
    ``name`` and its own ``ownership`` (traced, ``gateway.identity.ownership``)."""

    country: Code
    percent: float = Field(ge=0, le=100)
    name: str | None = None
    ownership: list[OwnershipIn] = Field(default_factory=list)

    def owner(self) -> Ownership:
        return Ownership(
            self.country, self.percent, self.name, tuple(o.owner() for o in self.ownership)
        )


class PrincipalIn(_Strict):
    id: str = "test-customer"
    name: str = ""
    kind: Literal["individual", "organization"] = "individual"
    citizenships: list[Code] = Field(default_factory=list)
    residence: Code | None = None
    incorporated_in: Code | None = None
    ownership: list[OwnershipIn] = Field(default_factory=list)
    kyc_level: str = "none"
    kyc_expires_at: AwareTimestamp | None = None
    kyc_verified_at: AwareTimestamp | None = None
    tier: str = "public"
    attributes: list[str] = Field(default_factory=list)
    sanctions_status: Literal["clear", "potential_match", "confirmed_match"] = "clear"
    status: Literal["active", "suspended"] = "active"

    def principal(self) -> Principal:
        return Principal(
            customer_id=self.id,
            name=self.name,
            kind=self.kind,
            citizenships=frozenset(self.citizenships),
            residence=self.residence,
            incorporated_in=self.incorporated_in,
            ownership=tuple(o.owner() for o in self.ownership),
            kyc_level=self.kyc_level,
            kyc_expires_at=self.kyc_expires_at,
            kyc_verified_at=self.kyc_verified_at,
            tier=self.tier,
            attributes=frozenset(self.attributes),
            sanctions_status=self.sanctions_status,
            status=self.status,
            auth_method="test",
        )


class RequestIn(_Strict):
    model: str
    unknown_model: bool = False
    """The case is about a model the bundle does not define (else that is a typo)."""
    origin: Code | None = None
    endpoint: str = DEFAULT_ENDPOINT
    body: dict[str, Any] | None = None
    capabilities: list[str] | None = None


class ExpectIn(_Strict):
    decision: Literal["allow", "deny"]
    rule_ids: list[str] | None = None
    """The deciding rules: enforced ones only (a report rule never decides)."""
    report_rule_ids: list[str] | None = None
    """The report-mode rules that matched."""
    tier: str | None = None


class CaseIn(_Strict):
    name: str
    principal: PrincipalIn = Field(default_factory=PrincipalIn)
    request: RequestIn
    at: AwareTimestamp | None = None
    """A naive time cannot be compared with the rules' aware ``effective`` times."""
    expect: ExpectIn


@dataclass(frozen=True, slots=True)
class CaseResult:
    file: str
    line: int | None
    name: str
    passed: bool
    detail: str = ""
    matched: frozenset[str] = frozenset()
    """The rules the case's decision listed (deciding or in report mode)."""


def origin_of(code: str | None, client_ip: str | None = None) -> Origin:
    if code is None:
        return Origin(client_ip)
    if "-" in code:
        return Origin(client_ip, country=code.split("-", 1)[0], region=code)
    return Origin(client_ip, country=code)


def _body_facts(model: str, body: dict[str, Any]) -> BodyFacts:
    # The proxy's own parser, so a policy test classifies exactly as production does.
    from gateway.proxy.body import parse_body

    return parse_body(json.dumps({"model": model, **body}).encode())


def request_facts(
    principal: Principal, req: RequestIn, bundle: CompiledBundle, at: datetime, origin: Origin
) -> RequestFacts | str:
    """The facts the gateway would decide ``req`` on, or why it cannot be built.

    Shared by policy tests and ``policy explain``: the body is parsed by the
    proxy's parser and classified by the bundle, as in production."""
    if req.body is not None and req.capabilities is not None:
        return "request: give either 'body' or 'capabilities', not both"
    body = _body_facts(req.model, req.body) if req.body is not None else BodyFacts(model=req.model)
    # As the proxy serves it: bounded by the tier's default when it names no bound.
    body = with_output_bound(body, req.endpoint, default_output_tokens(principal, bundle, at))
    caps = frozenset(req.capabilities) if req.capabilities is not None else bundle.classify(body)
    unknown = caps - set(bundle.capability_names())
    if unknown:
        return f"request.capabilities: unknown capability {', '.join(sorted(unknown))}"
    api: ApiShape = "anthropic" if req.endpoint.startswith("/v1/messages") else "openai"
    return RequestFacts(
        endpoint=req.endpoint, api=api, body=body, origin=origin, capabilities=caps
    )


def run_case(
    case: CaseIn, bundle: CompiledBundle, now: datetime
) -> tuple[bool, str, frozenset[str]]:
    """(passed, what differed, the rules the decision listed)."""
    principal = case.principal.principal()
    at = case.at or now
    facts = request_facts(principal, case.request, bundle, at, origin_of(case.request.origin))
    if isinstance(facts, str):
        return False, facts, frozenset()
    decision = decide(principal, facts, bundle, at)
    matched = frozenset(decision.rule_ids) | frozenset(decision.report_rule_ids)
    if EVALUATION_ERROR in decision.rule_ids or EVALUATION_ERROR in decision.report_rule_ids:
        # decide() fails closed to a deny; a case expecting deny must not pass
        # because the engine crashed (nor one about report rules that never ran).
        where = "" if EVALUATION_ERROR in decision.rule_ids else " in its report-mode rules"
        return False, (
            f"the engine could not evaluate this case{where} (rule id 'evaluation-error'; "
            "the cause is logged)"
        ), frozenset()
    problems = []
    if decision.decision != case.expect.decision:
        problems.append(f"expected {case.expect.decision}, got {decision.decision}")
    if case.expect.rule_ids is not None and sorted(case.expect.rule_ids) != sorted(
        decision.rule_ids
    ):
        problems.append(
            f"expected rule_ids {sorted(case.expect.rule_ids)}, got {list(decision.rule_ids)}"
        )
    expected_report = case.expect.report_rule_ids
    if expected_report is not None and sorted(expected_report) != sorted(decision.report_rule_ids):
        problems.append(
            f"expected report_rule_ids {sorted(expected_report)}, "
            f"got {list(decision.report_rule_ids)}"
        )
    if case.expect.tier is not None and case.expect.tier != decision.effective_tier:
        problems.append(f"expected tier {case.expect.tier}, got {decision.effective_tier}")
    if problems:
        got = (
            f" [decision={decision.decision} rule_ids={list(decision.rule_ids)} "
            + (
                f"report_rule_ids={list(decision.report_rule_ids)} "
                if decision.report_rule_ids
                else ""
            )
            + f"tier={decision.effective_tier}"
            + (f" demoted: {decision.tier_demotion}" if decision.tier_demotion else "")
            + "]"
        )
        return False, "; ".join(problems) + got, matched
    return True, "", matched


def _line(lines: dict[DataPath, int], loc: DataPath) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def run_tests(
    directory: Path, bundle: CompiledBundle, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[CaseResult]:
    """Every case of every test file; malformed files and cases are failures."""
    results: list[CaseResult] = []
    for path in test_files(directory):
        name = path.relative_to(directory).as_posix()
        parsed = parse_file(path, name)
        for problem in parsed.errors:
            results.append(CaseResult(name, problem.line, "(file)", False, problem.message))
        if parsed.data is None:
            continue
        raw_cases = parsed.data.get("cases") if isinstance(parsed.data, dict) else None
        if not isinstance(raw_cases, list) or set(parsed.data) != {"cases"}:
            results.append(
                CaseResult(
                    name,
                    1,
                    "(file)",
                    False,
                    "a test file is a mapping with one key, 'cases' (a list)",
                )
            )
            continue
        # Each case is validated on its own: one malformed case must not hide the others.
        for index, raw in enumerate(raw_cases):
            line = parsed.lines.get(("cases", index))
            try:
                case = CaseIn.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = ("cases", index, *(p for p in err["loc"] if isinstance(p, int | str)))
                    results.append(
                        CaseResult(
                            name, _line(parsed.lines, loc), format_path(loc), False,
                            _message(err, CaseIn),
                        )
                    )
                continue
            problems = case_references(case, bundle) + record_problems(case)
            for where, message in problems:
                loc = ("cases", index, *where)
                results.append(
                    CaseResult(name, _line(parsed.lines, loc), format_path(loc), False, message)
                )
            if problems:
                continue
            try:
                ok, detail, matched = run_case(case, bundle, now())
            except Exception as exc:  # noqa: BLE001 - a crashing case is reported as a failure
                ok, detail, matched = False, f"error: {type(exc).__name__}: {exc}", frozenset()
            results.append(CaseResult(name, line, case.name, ok, detail, matched))
    return results


run_tests.__test__ = False  # type: ignore[attr-defined]
