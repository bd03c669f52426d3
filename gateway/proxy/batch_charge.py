"""The catch-up charge of a Message Batch: what its results show it used
beyond what its create reserved.

A create is admitted with each inner request's reservation (its output bound
plus the gateway's estimate of its input: ``gateway.proxy.reserve``) and is
never settled down (its answer has no usage). The upstream counts the input
with its own tokenizer, cached prompt parts included, so a batch may use
more than it reserved; without charging the rest, batches would be a way
past a token quota.

So the binding keeps what the create reserved, per quota group (the inner
requests decided with one capability set were admitted in one plan's
windows; ``groups_of``). The results (JSONL, one line per request, with
usage) are read as they are relayed, never held up (``ResultsUsage``), and
once a download has ended, what each group's relayed lines used beyond what
the group has been charged so far (its reservation, and earlier downloads'
charges) is charged to that group's windows (``charge_results``). Once
across replicas and repeated downloads: the binding records what it covers
by a compare-and-set (``BatchOwners.cover``) before anything is charged. A
download cut short (the client hung up before the last line) charges what
it relayed, so stopping short of the end does not make the rest free.
Never a refund: a batch that used less keeps its reservation charged.
The charge is an audit event (``batch_charged``) naming the batch, the
results call's decision and the tokens; the results call's outcome record
carries the charged tokens as its output tokens.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import orjson

from gateway.policy.quota_plans import quota_plan
from gateway.proxy.references import Reference
from gateway.proxy.relayed_ids import answer_references
from gateway.proxy.usage import usage_from_doc
from gateway.stages import StageUnavailable, Usage

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange
    from gateway.services import Services

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024 * 1024
"""A results line longer than this is not parsed (its usage is not counted)."""


class ReservedGroup(TypedDict):
    """The inner requests of one batch admitted in one quota plan (stored as JSON)."""

    capabilities: list[str]
    """The capability set they were decided with: the plan's windows are its buckets."""
    reserved: int
    """The sum of their token reservations."""
    charged: NotRequired[int]
    """What results downloads have charged beyond ``reserved`` so far."""
    custom_ids: NotRequired[list[str]]
    """Which requests these are; left out when the batch has one group."""


def groups_of(
    found: list[tuple[frozenset[str], int, str]], of_all: bool = True
) -> list[ReservedGroup]:
    """(capabilities, reservation, custom_id) per inner request whose plan
    meters tokens, grouped by capabilities; ``of_all``: they are every
    request of the batch (else one group still names its requests)."""
    by_caps: dict[frozenset[str], ReservedGroup] = {}
    for caps, reserved, custom_id in found:
        group = by_caps.get(caps)
        if group is None:
            group = by_caps[caps] = {"capabilities": sorted(caps), "reserved": 0, "custom_ids": []}
        group["reserved"] += reserved
        group["custom_ids"].append(custom_id)
    groups = list(by_caps.values())
    if len(groups) == 1 and of_all:
        del groups[0]["custom_ids"]  # every line is this group's: no need to keep 10,000 ids
    return groups


class ResultsUsage:
    """Reads a results download's lines as the relay hands its bytes over:
    the tokens each ``succeeded`` request used, summed per ``custom_id``'s group."""

    __slots__ = ("_group_of", "_partial", "_skipping", "references", "used")

    def __init__(self, groups: list[ReservedGroup]) -> None:
        self._group_of: dict[str, int] | None = None
        if len(groups) > 1 or "custom_ids" in groups[0]:
            self._group_of = {
                custom_id: index
                for index, group in enumerate(groups)
                for custom_id in group.get("custom_ids", ())
            }
        self.used = [0] * len(groups)
        self.references: list[Reference] = []
        """Ids the relayed results show (files code execution wrote): bound
        to the caller once the download has ended (``gateway.proxy.settle``)."""
        self._partial = b""
        self._skipping = False  # inside a line too long to parse

    def feed(self, chunk: bytes) -> None:
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = b""
        last = lines.pop()  # the unterminated rest (empty after a newline)
        for line in lines:
            if self._skipping:
                self._skipping = False  # that long line ends here
                continue
            self._line(line)
        if len(last) > MAX_LINE_BYTES:
            self._skipping = True
        elif not self._skipping:
            self._partial = last

    def finish(self) -> None:
        """The download ended: a last line without a newline counts too."""
        if self._partial and not self._skipping:
            self._line(self._partial)
        self._partial = b""

    def _line(self, line: bytes) -> None:
        if b'"usage"' not in line:
            return
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        result = doc.get("result")
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            return  # errored, canceled and expired requests generated nothing
        self.references.extend(answer_references(result.get("message")))
        usage = usage_from_doc(result)
        if usage is None or not usage.total:
            return
        index = 0
        if self._group_of is not None:
            found = self._group_of.get(str(doc.get("custom_id")))
            if found is None:
                return  # not a request of this batch as it was created here
            index = found
        self.used[index] += usage.total


async def charge_results(services: Services, ex: Exchange, seen: ResultsUsage) -> Usage | None:
    """Charge what a results download relayed beyond what the batch has been
    charged so far (its reservations, earlier downloads' charges); returns
    the tokens charged (None: nothing)."""
    owners = services.batch_owners
    call = ex.batch
    reserved = ex.batch_reserved
    if owners is None or call is None or call.batch_id is None or reserved is None:
        return None
    if not any(used > group["reserved"] + group.get("charged", 0)
               for used, group in zip(seen.used, reserved, strict=True)):  # fmt: skip
        return None  # within what it was charged when this call was decided
    principal, decision = ex.principal, ex.decision
    assert principal is not None and decision is not None
    try:
        covered = await owners.cover(call.batch_id, seen.used)
    except StageUnavailable as exc:
        log.error("%s; batch %s keeps what it was charged for now", exc, call.batch_id)
        return None
    charged = 0
    per_group: list[dict[str, Any]] = []
    for group, extra in covered:
        if extra <= 0:
            continue
        caps = frozenset(group["capabilities"])
        plan, _ = quota_plan(ex.bundle, decision.effective_tier, caps)
        try:
            await services.meter.charge(principal.customer_id, plan, extra)
        except StageUnavailable as exc:
            log.error("%s; batch %s: %d tokens beyond its reservation not charged",
                      exc, call.batch_id, extra)  # fmt: skip
            continue
        charged += extra
        per_group.append({"capabilities": group["capabilities"], "reserved": group["reserved"],
                          "charged_before": group.get("charged", 0), "charged": extra})  # fmt: skip
    if not charged:
        return None
    try:
        await services.audit.record_event("batch_charged", {
            "batch_id": call.batch_id, "customer_id": principal.customer_id,
            "decision_id": ex.id, "reserved_tokens": sum(g["reserved"] for g, _ in covered),
            "used_tokens": sum(seen.used), "charged_tokens": charged, "groups": per_group,
        }, wait=False)  # fmt: skip
    except StageUnavailable as exc:
        # Charged: the outcome record of this download still says how much.
        log.error("%s; the batch_charged event of %s is not written", exc, call.batch_id)
    return Usage(0, charged)


def results_usage(ex: Exchange, status: int) -> ResultsUsage | None:
    """For a 2xx results download of a batch with reservations left to settle against."""
    call = ex.batch
    if call is None or call.operation != "results" or status >= 300 or not ex.batch_reserved:
        return None
    return ResultsUsage(ex.batch_reserved)
