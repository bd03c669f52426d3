"""A policy test's principal and request, checked as production would see them.

The principal is checked the way the admin API checks a customer record
(``gateway/kyc/schemas.py``, codes from ``gateway/kyc/codes.py``): ISO 3166-1
alpha-2 citizenships, incorporation and owner countries; a residence that is
a country or an ISO 3166-2 region (``UA-43``); ownership adding up to at most
100 % for the customer and for each owning entity, at most 8 levels deep;
attributes in the record's attribute format. The request's origin is
a country or region code, as GeoIP reports it, and its endpoint one of the
proxied routes.

Why a test-file error and not a failed case: the engine compares codes as
strings, so a code no record or GeoIP lookup can hold (``UK``, ``XX``) only
ever fails to match. ``residence: UK`` escapes every ``residence_in``, and a
case expecting allow passes whatever the policy says. Such a case tests
nothing, so it is reported with its file, line and field instead of run.

Codes are upper-cased before the check (``PrincipalIn`` does it as it parses),
as the admin API stores them: ``de`` in a test means the record ``DE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gateway.identity.ownership import MAX_DEPTH
from gateway.kyc.codes import country_code, country_or_region
from gateway.policy.names import COUNTRY_HINTS, attribute_problem, endpoint_problem
from gateway.policy.yamlsrc import DataPath

if TYPE_CHECKING:  # testing.py imports this module
    from gateway.policy.testing import CaseIn, OwnershipIn

_OWNERSHIP_SLACK = 0.0001
"""The admin API's tolerance for float shares such as 33.3333 * 3."""


def upper_code(value: Any) -> Any:
    """Normalise a code as the admin API does (strip, upper case); leave non-strings alone."""
    return value.strip().upper() if isinstance(value, str) else value


def _valid(check: Callable[[str], str], code: str) -> bool:
    try:
        check(code)
    except ValueError:
        return False
    return True


def _hint(code: str) -> str:
    hint = COUNTRY_HINTS.get(code)
    return f" ({hint})" if hint else ""


def _country(path: DataPath, code: str | None) -> list[tuple[DataPath, str]]:
    if code is None or _valid(country_code, code):
        return []
    return [(path, f"invalid ISO 3166-1 alpha-2 country code '{code}'{_hint(code)}")]


def _place(path: DataPath, code: str | None) -> list[tuple[DataPath, str]]:
    """A country or an ISO 3166-2 region (residence, origin)."""
    if code is None or _valid(country_or_region, code):
        return []
    return [(path, f"invalid ISO 3166 country or region code '{code}'{_hint(code)}")]


def _owners(
    path: DataPath, owners: Sequence[OwnershipIn], depth: int
) -> list[tuple[DataPath, str]]:
    """Owner countries, each entity's owners adding up to at most 100 %, an
    owner's owner holding a positive share, and the chain at most
    ``MAX_DEPTH`` levels deep: as ``gateway.kyc.schemas`` checks a record."""
    if depth > MAX_DEPTH:
        return [(path, f"owners more than {MAX_DEPTH} levels deep "
                       f"(an ownership chain is traced at most {MAX_DEPTH} levels)")]  # fmt: skip
    problems: list[tuple[DataPath, str]] = []
    for i, share in enumerate(owners):
        problems += _country((*path, i, "country"), share.country)
        if depth > 1 and share.percent <= 0:
            positive = "an owner's owner must hold more than 0 percent"
            problems.append(((*path, i, "percent"), positive))
        problems += _owners((*path, i, "ownership"), share.ownership, depth + 1)
    if sum(share.percent for share in owners) > 100 + _OWNERSHIP_SLACK:
        problems.append((path, "ownership percentages add up to more than 100"))
    return problems


def record_problems(case: CaseIn) -> list[tuple[DataPath, str]]:
    """Fields of a case no customer record or request could hold, by path inside the case."""
    p = case.principal
    problems: list[tuple[DataPath, str]] = []
    for i, code in enumerate(p.citizenships):
        problems += _country(("principal", "citizenships", i), code)
    problems += _place(("principal", "residence"), p.residence)
    problems += _country(("principal", "incorporated_in"), p.incorporated_in)
    problems += _owners(("principal", "ownership"), p.ownership, 1)
    for i, attribute in enumerate(p.attributes):
        problem = attribute_problem(attribute, "is not in the customer record's format")
        if problem is not None:
            problems.append((("principal", "attributes", i), problem))
    problems += _place(("request", "origin"), case.request.origin)
    endpoint = endpoint_problem(case.request.endpoint)
    if endpoint is not None:
        problems.append((("request", "endpoint"), endpoint))
    return problems
