"""The policy bundle's typed shape (SPEC section 3), as pydantic v2 models.

Every model forbids unknown keys, so a typo is a load error, never a silently
ignored condition. The loader validates each section item by item (so one bad
rule does not hide the errors of the next) and then checks cross references
(group, tier, model, capability and KYC-level names, ISO codes, regexes);
``Bundle`` is the whole merged bundle and the source of ``gateway policy schema``.

Sets of countries: a string names a country group (``origin_in: sanctioned``)
or is one ISO code; a list holds ISO 3166-1 alpha-2 codes, ISO 3166-2 region
codes, or group names (lower case), freely mixed.

The base models and the date-time field types are in ``schema_types.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.policy.schema_types import AwareTimestamp, CitedModel, StrictModel

SCHEMA_VERSION: Literal[1] = 1

NameSet = str | list[str]
"""One name or a list of names (models, tiers, capabilities...)."""

QuotaLimitKind = Literal[
    "requests_per_minute",
    "requests_per_day",
    "tokens_per_minute",
    "tokens_per_day",
    "concurrent_streams",
]

SanctionsStatusName = Literal["clear", "potential_match", "confirmed_match"]


class CountryGroup(CitedModel):
    countries: list[str] = Field(default_factory=list)
    """ISO 3166-1 alpha-2 codes (upper case)."""
    regions: list[str] = Field(default_factory=list)
    """ISO 3166-2 subdivision codes, e.g. ``UA-43``."""


class Tier(CitedModel):
    min_kyc: str
    require_attributes: list[str] = Field(default_factory=list)
    require_citizenship: NameSet | None = None
    """A country set; the customer must hold at least one citizenship in it."""
    kyc_max_age_days: int | None = Field(default=None, ge=1, le=36_500)
    """Re-verification: a customer whose KYC was verified longer ago than this
    (or whose verification time is unknown) is served as ``public``."""
    description: str | None = None


class Model(CitedModel):
    tiers: list[str]
    upstream: str | None = None
    """Base URL overriding ``GATEWAY_UPSTREAM_URL`` for this model."""
    description: str | None = None

    @field_validator("upstream")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class BodyCondition(StrictModel):
    """Conditions over the request body only: what a capability classifier may use."""

    has_tools: bool | None = None
    prompt_matches: NameSet | None = None
    """A regex or a list of regexes; any one matching the prompt text suffices."""
    max_tokens_over: int | None = Field(default=None, ge=0)
    messages_over: int | None = Field(default=None, ge=0)
    requests_logprobs: bool | None = None
    """The body asks for token log-probabilities (``logprobs``, ``top_logprobs``)."""
    requests_reasoning: bool | None = None
    """The body asks for the model's reasoning (Anthropic ``thinking``, a
    Responses ``reasoning.summary``)."""
    any_: list[BodyCondition] | None = Field(default=None, alias="any")
    all_: list[BodyCondition] | None = Field(default=None, alias="all")
    not_: BodyCondition | None = Field(default=None, alias="not")


class Condition(StrictModel):
    """A rule's ``when``/``unless``: keys in one mapping are ANDed.

    An empty mapping matches every request.
    """

    citizenship_in: NameSet | None = None
    residence_in: NameSet | None = None
    origin_in: NameSet | None = None
    origin_unknown: bool | None = None
    us_person: bool | None = None
    controlled_by_in: NameSet | None = None
    """The set's countries together own >= ``control_threshold_percent`` (shares aggregated)."""
    incorporated_in: NameSet | None = None
    kyc_at_least: str | None = None
    kyc_expired: bool | None = None
    tier_in: NameSet | None = None
    """Effective tier."""
    has_attribute: NameSet | None = None
    """All listed attributes are present (names as in customer records: ``[a-z][a-z0-9_]*``)."""
    customer_in: NameSet | None = None
    sanctions_status_in: SanctionsStatusName | list[SanctionsStatusName] | None = None
    model_in: NameSet | None = None
    capability_in: NameSet | None = None
    """The request carries at least one of these capabilities."""
    endpoint_in: NameSet | None = None
    """Proxied routes only (``/v1/chat/completions``, ``/v1/messages``...): others are refused."""
    model_allowed_for_tier: bool | None = None
    has_tools: bool | None = None
    prompt_matches: NameSet | None = None
    max_tokens_over: int | None = Field(default=None, ge=0)
    messages_over: int | None = Field(default=None, ge=0)
    requests_logprobs: bool | None = None
    requests_reasoning: bool | None = None
    any_: list[Condition] | None = Field(default=None, alias="any")
    all_: list[Condition] | None = Field(default=None, alias="all")
    not_: Condition | None = Field(default=None, alias="not")


class Capability(CitedModel):
    when: BodyCondition
    description: str | None = None


class Effective(StrictModel):
    from_: AwareTimestamp | None = Field(default=None, alias="from")
    until: AwareTimestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Effective:
        if self.from_ is not None and self.until is not None and self.until <= self.from_:
            raise ValueError("'until' must be after 'from'")
        return self


RuleMode = Literal["enforce", "report"]
"""``report``: the rule is evaluated and its matches are logged in the decision
record (``report_rule_ids``), but it never decides: the way to stage a rule on
live traffic before it takes effect."""


RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=120)]
# 120: the audit log's rule index holds ids in 128 characters, a report
# match as ``report:<id>`` (PostgreSQL refuses a longer value: every
# decision naming the rule would fail to record, i.e. 503).


class Rule(CitedModel):
    id: RuleId
    effect: Literal["allow", "deny", "exempt"]
    """``exempt``: when it matches, the deny rules named in ``exempts`` do not
    apply to the request (a licence, a named exception to a directive). It
    grants nothing by itself: the request still needs an allow. An allow it
    made possible lists it among the deciding rules, so the audit log shows
    every request served under it."""
    exempts: list[RuleId] | None = None
    """Ids of the deny rules an ``exempt`` rule lifts (required with, and only with, it)."""
    mode: RuleMode = "enforce"
    in_flight: Literal["finish", "cut"] = "finish"
    """Deny rules only: what becomes of a stream already being served when the
    rule starts to refuse it (its ``effective.from`` passes, or a reload brings
    the rule in). ``finish`` (default): it was allowed when it arrived and is
    served to its end. ``cut``: it is ended at that instant with an error
    event naming the rule, and its outcome record says ``policy_cut:<id>``."""
    when: Condition
    unless: Condition | None = None
    effective: Effective | None = None
    reason: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _cut_is_for_denies(self) -> Rule:
        if self.in_flight == "cut" and self.effect != "deny":
            raise ValueError("'in_flight: cut' is only for rules with effect: deny")
        return self

    @model_validator(mode="after")
    def _exempts_with_exempt(self) -> Rule:
        if self.effect == "exempt" and not self.exempts:
            raise ValueError("an 'exempt' rule must name the deny rules it lifts in 'exempts'")
        if self.effect != "exempt" and self.exempts is not None:
            raise ValueError("'exempts' is only for rules with effect: exempt")
        return self


class QuotaLimits(StrictModel):
    requests_per_minute: int | None = Field(default=None, ge=0)
    requests_per_day: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    concurrent_streams: int | None = Field(default=None, ge=0)

    def items(self) -> list[tuple[QuotaLimitKind, int]]:
        """The limits that are set, in a fixed order."""
        pairs: list[tuple[QuotaLimitKind, int | None]] = [
            ("requests_per_minute", self.requests_per_minute),
            ("requests_per_day", self.requests_per_day),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_per_day", self.tokens_per_day),
            ("concurrent_streams", self.concurrent_streams),
        ]
        return [(k, v) for k, v in pairs if v is not None]


class TierQuota(BaseModel):
    """One tier's quotas: ``default`` plus one entry per capability name.

    Capability entries are the extra keys; each must be a capability of the bundle.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    __pydantic_extra__: dict[str, QuotaLimits] = Field(init=False)

    fail_open: bool = False
    """When the quota store is unreachable: admit (True) or answer 503 (False)."""
    default_max_tokens: int | None = Field(default=None, gt=0)
    """Output tokens reserved when a request names no max_tokens."""
    default: QuotaLimits | None = None

    def capability_limits(self) -> dict[str, QuotaLimits]:
        return dict(self.__pydantic_extra__ or {})


class Bundle(StrictModel):
    """The merged bundle: every file of the policy directory together."""

    schema_version: Literal[1] = SCHEMA_VERSION
    country_groups: dict[str, CountryGroup] = Field(default_factory=dict)
    kyc_levels: list[str] = Field(default_factory=lambda: ["none"])
    tiers: dict[str, Tier] = Field(default_factory=dict)
    models: dict[str, Model] = Field(default_factory=dict)
    capabilities: dict[str, Capability] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    quotas: dict[str, TierQuota] = Field(default_factory=dict)
    control_threshold_percent: float = Field(default=50.0, gt=0, le=100)


SECTION_NAMES: tuple[str, ...] = tuple(Bundle.model_fields)
"""Top-level keys a bundle file may hold."""


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of one bundle file (all sections optional)."""
    schema = Bundle.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Gateway policy bundle file"
    schema.pop("required", None)
    return schema
