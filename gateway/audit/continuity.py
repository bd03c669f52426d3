"""What the signed checkpoints say must still exist: deleting them must not pass.

A forger with write access to the database but not the signing key can
rewrite records and re-hash the chain; only signatures stop them. So deleting
signatures must itself be detectable. Three checks, shared by the database
verifier (``verify.py``) and export verification (``offline.py``):

  * **links**: a format 2 checkpoint signs the SHA-256 of its chain's previous
    checkpoint, so one deleted in the middle (or at the start) leaves a signed
    link to nothing. Format 1 checkpoints (written before links existed) are
    accepted before a chain's first linked one, which names the last of them.
  * **the unsigned tail**: a writer signs new records within ``within_s`` (it
    says so in each checkpoint); records after a chain's last checkpoint are a
    failure once that checkpoint is older than ``within_s + GRACE_S``: later
    checkpoints were deleted, or the writer died without its final checkpoint.
    A chain with records and no checkpoint at all fails at once: chains are
    signed from their start (a genesis checkpoint at seq 0).
  * **witnesses**: each checkpoint signs the committed heads of the other
    chains its writer read; a chain deleted wholesale, or cut short, while
    another chain's checkpoint names a later head of it, is found.

The clock of the tail rule is the verifier's (``at``): now for the database,
the export's time (or ``--at``) for an export.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.problems import Problem
from gateway.audit.tables import audit_nodes, audit_records

GRACE_S = 60.0
"""Added to a checkpoint's ``within_s``: clock skew, a slow commit, a short store outage."""
LEGACY_WITHIN_S = 70.0
"""For format 1 checkpoints, which do not say: the default 60 s cadence plus the 10 s idle tick."""


def link_problems(node_id: str, cps: Sequence[Checkpoint], *, anchored: bool = False,
                  present: Collection[tuple[int, str]] = ()) -> list[Problem]:
    """``cps``: one chain's valid checkpoints (kind ``checkpoint``) in ``seq`` order.

    ``anchored``: the first is an export's anchor, whose own predecessor the
    export does not carry (its link is not checked). ``present``: ``(seq,
    sha256)`` of the chain's checkpoints that are there but failed their own
    check (a key not pinned, a bad signature): each is reported by that check,
    and a link to one is no evidence of deletion (after a key rotation,
    pinned to the new key, the new key's first checkpoint names the old key's
    last).
    """
    problems: list[Problem] = []
    stored = {(cp.seq, cp.sha256) for cp in cps}
    before: Checkpoint | None = None
    linked = False
    for i, cp in enumerate(cps):
        if cp.format < 2:
            if linked:
                problems.append(Problem(
                    "checkpoint_chain", f"checkpoint at seq {cp.seq} has the old, unlinked "
                    "format but follows linked ones: it was not written there", node_id, cp.seq))
            before = cp
            continue
        linked = True
        expected = None if before is None else (before.seq, before.sha256)
        if (i == 0 and anchored) or cp.prev == expected:
            before = cp
            continue
        if cp.prev is None:
            message = (f"checkpoint at seq {cp.seq} says it is its chain's first, but a signed "
                       f"checkpoint at seq {before.seq if before else '?'} precedes it")
        elif cp.prev in present:
            before = cp  # reported as that checkpoint's own problem
            continue
        elif cp.prev not in stored:
            message = (f"checkpoint at seq {cp.seq} is signed as following a checkpoint at seq "
                       f"{cp.prev[0]}, which is missing: checkpoints were deleted")
        else:
            message = (f"checkpoint at seq {cp.seq} does not follow the checkpoint before it "
                       f"(seq {before.seq if before else '?'}): a checkpoint was duplicated or "
                       "moved")
        problems.append(Problem("checkpoint_chain", message, node_id, cp.seq))
        before = cp
    return problems


def tail_problem(node_id: str, last: Checkpoint | None, unsigned: int, first_unsigned: int,
                 at: datetime, legacy_within_s: float = LEGACY_WITHIN_S) -> Problem | None:
    """Records after the chain's last checkpoint (``unsigned`` of them) judged at ``at``."""
    if unsigned <= 0:
        return None
    if last is None:
        return Problem(
            "unsigned", f"{unsigned} records from seq {first_unsigned} on and no signed "
            "checkpoint of this chain: chains are signed from their start (by older "
            "gateways within their first minute), so its "
            "checkpoints were deleted", node_id, first_unsigned)
    within = last.within_s if last.within_s is not None else legacy_within_s
    due = datetime.fromisoformat(last.ts) + timedelta(seconds=within + GRACE_S)
    if at <= due:
        return None
    return Problem(
        "unsigned", f"{unsigned} records after the last signed checkpoint (seq {last.seq}, "
        f"{last.ts}) are signed by none, though the writer signs new records within "
        f"{within:g} s (verify allows {GRACE_S:g} s more): checkpoints after it were deleted, "
        "or the writer stopped without its final checkpoint (a crash; restarting the writer "
        f"of chain {node_id}, or `gateway audit seal --node {node_id}`, signs the tail as it "
        "stands now)", node_id, first_unsigned)


@dataclass(frozen=True, slots=True)
class Witness:
    seq: int
    hash: str
    by_node: str
    by_seq: int

    @property
    def where(self) -> str:
        return f"chain {self.by_node}'s signed checkpoint at seq {self.by_seq}"


def witnessed_heads(by_node: Mapping[str, Sequence[Checkpoint]]) -> dict[str, Witness]:
    """Per chain, the furthest head of it that another chain's valid checkpoint signed."""
    out: dict[str, Witness] = {}
    for node_id, cps in by_node.items():
        for cp in cps:
            if cp.problem is not None:
                continue
            for other, (seq, head) in cp.nodes.items():
                known = out.get(other)
                if other != node_id and (known is None or seq > known.seq):
                    out[other] = Witness(seq, head, node_id, cp.seq)
    return out


def witness_problem(node_id: str, witness: Witness, stored: str | None) -> Problem | None:
    """``stored``: the hash of the chain's record at ``witness.seq`` (None: no such record)."""
    if stored is None:
        return Problem("chain_missing", f"chain {node_id} reached seq {witness.seq} "
                       f"({witness.where} says so), but that record is missing: the chain was "
                       "deleted or cut short", node_id, witness.seq)
    if stored != witness.hash:
        return Problem("checkpoint_mismatch", f"chain {node_id} at seq {witness.seq} differs "
                       f"from the head {witness.where} signed: records up to it were rewritten",
                       node_id, witness.seq)
    return None


async def witness_problems(conn: AsyncConnection, witnesses: Mapping[str, Witness],
                           pruned: Mapping[str, int]) -> list[Problem]:
    """Each witnessed head against the database (records pruned behind a tombstone pass)."""
    problems: list[Problem] = []
    t = audit_records
    for node_id, witness in sorted(witnesses.items()):
        if witness.seq <= pruned.get(node_id, 0):
            continue
        stored = (await conn.execute(select(t.c.hash).where(
            t.c.node_id == node_id, t.c.seq == witness.seq))).scalar()
        problem = witness_problem(node_id, witness, None if stored is None else str(stored))
        if problem is not None:
            problems.append(problem)
    await conn.rollback()
    return problems


def head_row_problems(node_id: str, head: Row[Any] | None, checkpoints: Mapping[int, Checkpoint],
                      last_seq: int | None, last_hash: str, pruned_through: int) -> list[Problem]:
    """The chain's end against its signed checkpoints and its ``audit_nodes`` head row."""
    last = last_seq if last_seq is not None else pruned_through
    beyond = sorted(s for s in checkpoints if s > last)
    if beyond:
        return [Problem("truncated", f"signed checkpoint at seq {beyond[-1]} but the last record "
                        f"is seq {last}: records after it were deleted", node_id, last + 1)]
    if head is not None and int(head.last_seq) > last:
        return [Problem("truncated", f"chain head row says seq {head.last_seq} but the last "
                        f"record is seq {last}: tail deleted after the last checkpoint",
                        node_id, last + 1)]
    if head is not None and int(head.last_seq) == last and str(head.last_hash) != last_hash:
        # The head row is written in the same transaction as every batch, so after
        # the last checkpoint it is the only witness of the tail's content: a tail
        # edited and re-hashed consistently still ends at a different hash.
        return [Problem("head_mismatch", f"chain head row says seq {last} has hash "
                        f"{str(head.last_hash)[:16]}…, the record there hashes to "
                        f"{last_hash[:16]}…: records after the last checkpoint were rewritten",
                        node_id, last)]
    return []


async def beyond_head_problem(conn: AsyncConnection, node_id: str) -> Problem | None:
    """Records past the committed head were not written by a writer (same-transaction rule)."""
    head_now = (await conn.execute(
        select(audit_nodes.c.last_seq).where(audit_nodes.c.node_id == node_id)
    )).scalar()
    extra = (await conn.execute(
        select(audit_records.c.seq, audit_records.c.id)
        .where(audit_records.c.node_id == node_id, audit_records.c.seq > int(head_now or 0))
        .order_by(audit_records.c.seq).limit(1)
    )).first()
    await conn.rollback()
    if extra is None:
        return None
    return Problem("beyond_head", f"seq {extra.seq} lies past the committed chain head "
                   f"({head_now or 0}): inserted outside the writer", node_id,
                   int(extra.seq), str(extra.id))
