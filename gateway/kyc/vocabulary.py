"""The KYC levels and tiers a customer record may name: those of the policy
bundle in force.

A level or tier the bundle does not define is not an error at request time
(the engine serves such a customer as ``public``), so a typo written into a
record would silently demote the customer. Writes are therefore checked here:
the admin API and the KYC webhook against the running bundle, the CLI against
the bundle in ``GATEWAY_POLICY_DIR``. Values already stored are never
re-checked: a bundle that drops a tier leaves its customers to the runtime
fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Record field -> what the bundle calls the names it may take.
CHECKED_FIELDS: Mapping[str, str] = {"kyc_level": "KYC level", "tier": "tier"}


@dataclass(frozen=True, slots=True)
class Vocabulary:
    kyc_levels: tuple[str, ...]
    """Lowest first, as the bundle orders them."""
    tiers: tuple[str, ...]

    def allowed(self, field: str) -> tuple[str, ...]:
        return self.kyc_levels if field == "kyc_level" else self.tiers


@dataclass(frozen=True, slots=True)
class UnknownName:
    field: str
    value: str
    allowed: tuple[str, ...]

    @property
    def message(self) -> str:
        what = CHECKED_FIELDS[self.field]
        return (
            f"{self.value!r} is not a {what} of the loaded policy bundle; "
            f"allowed: {', '.join(self.allowed)}"
        )


def vocabulary(kyc_levels: Iterable[str], tiers: Iterable[str]) -> Vocabulary:
    return Vocabulary(tuple(kyc_levels), tuple(tiers))


def unknown_names(values: Mapping[str, object], vocab: Vocabulary) -> list[UnknownName]:
    """The checked fields among ``values`` whose value the bundle does not define.

    Only the fields present are looked at (a PATCH names what it changes);
    None (a field left out) is not checked.
    """
    found: list[UnknownName] = []
    for field in CHECKED_FIELDS:
        value = values.get(field)
        if isinstance(value, str) and value not in vocab.allowed(field):
            found.append(UnknownName(field, value, vocab.allowed(field)))
    return found
