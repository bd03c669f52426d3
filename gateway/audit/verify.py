"""``gateway audit verify``: recompute every chain and checkpoint in the database.

For each chain (node) the records are streamed in ``seq`` order in chunks
(bounded memory) and checked against: the sequence (a gap is a deleted
record), the body's own ``node_id``/``seq``/``id`` (a mismatch is a reorder or
a renumbering), ``prev_hash`` linkage (an inserted record links to the record
two back), the hash of the body (an edit), the query columns (an edit of an
indexed column), the rule-id side index (``rule_index.py``: rows missing,
added, or naming no record), every signed checkpoint (a chain rewritten
from some point on no longer reaches the signed head), and what the
checkpoints say must still exist (``continuity.py``: the chain of checkpoints
itself, an unsigned tail no older than the writer's signing cadence, the other
chains' heads each checkpoint signed), and that every ownership tree a
decision names by digest is stored and hashes to it (``ownership_snapshots.py``).

What is and is not detectable, honestly (gateway/audit/README.md in full):
  * anything a signed checkpoint covers: edits, deletions, insertions,
    reorders, truncation, a consistent rewrite of the hashes, and deleting the
    checkpoints themselves (in the middle: a broken signed link; at the end:
    an unsigned tail older than the cadence; all of them: a chain without one);
  * the young tail after the newest checkpoint (at most ``within_s`` + grace
    old): edits, deletions in the middle, truncation and a consistent re-hash
    are detected against the ``audit_nodes`` head row, which every batch
    updates in the same transaction; an attacker with write access who rewrites
    that row too can change that young tail, and can roll a chain back to one
    of its signed checkpoints (deleting everything after it) unless another
    chain's later checkpoint witnessed it further. The outside witnesses are the
    checkpoint log lines (``audit checkpoint node=… seq=… head=…``) and exports.

The checks of one stored row against its chain and its own body are in
``verify_row.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.chain import GENESIS
from gateway.audit.checkpoints import Checkpoint, load_checkpoints
from gateway.audit.continuity import (
    LEGACY_WITHIN_S,
    beyond_head_problem,
    head_row_problems,
    link_problems,
    tail_problem,
    witness_problems,
    witnessed_heads,
)
from gateway.audit.ownership_snapshots import SnapshotCheck
from gateway.audit.problems import Problem as Problem  # re-exported: tests
from gateway.audit.rule_index import ChunkRecord, RuleIndexCheck, RuleIndexProblem, expected_rules
from gateway.audit.tables import audit_nodes, audit_records
from gateway.audit.verify_row import parse_stored_body, row_problem


@dataclass(slots=True)
class NodeSummary:
    node_id: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    checkpoints: int = 0
    pruned_through: int = 0
    unsigned: int = 0
    """Records after the chain's last signed checkpoint (young: not yet signed)."""


@dataclass(slots=True)
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    nodes: list[NodeSummary] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem_count": self.problem_count,
            "first_problem": asdict(self.first) if self.first else None,
            "problems": [asdict(p) for p in self.problems],
            "nodes": [asdict(n) for n in self.nodes],
        }


class _Collector:
    def __init__(self, report: VerifyReport, limit: int) -> None:
        self.report = report
        self.limit = limit

    def add(self, problem: Problem) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < self.limit:
            self.report.problems.append(problem)

    def add_rule_index(self, problem: RuleIndexProblem) -> None:
        self.add(Problem("rule_index", problem.message, problem.node_id, problem.seq,
                         problem.record_id))


async def verify_log(
    engine: AsyncEngine,
    *,
    trusted_keys: Iterable[bytes] | None = None,
    chunk_size: int = 2000,
    max_problems: int = 100,
    at: datetime | None = None,
    legacy_within_s: float = LEGACY_WITHIN_S,
) -> VerifyReport:
    """Verify every chain. ``trusted_keys``: raw Ed25519 public keys to accept;
    None trusts the keys stored in ``audit_keys`` (say so to the auditor).
    ``at``: when the log is judged (default now): an unsigned tail older than
    its writer's signing cadence then is a failure (``continuity.py``);
    ``legacy_within_s`` is that cadence for checkpoints that do not state it."""
    at = at or datetime.now(UTC)
    report = VerifyReport()
    out = _Collector(report, max_problems)
    async with engine.connect() as conn:
        checkpoints = await load_checkpoints(conn, trusted_keys)
        for cp in checkpoints.invalid:
            out.add(Problem(cp.problem or "bad_signature", cp.problem_message, cp.node_id, cp.seq))
        heads = {str(r.node_id): r for r in (await conn.execute(select(audit_nodes))).all()}
        await conn.rollback()
        node_ids = sorted(set(heads) | set(checkpoints.by_node) | set(await _record_nodes(conn)))
        rules = RuleIndexCheck(out.add_rule_index)
        await rules.start(conn)
        snapshots = SnapshotCheck()
        for node_id in node_ids:
            summary = NodeSummary(node_id)
            report.nodes.append(summary)
            failed = {(cp.seq, cp.sha256) for cp in checkpoints.by_node.get(node_id, [])
                      if cp.problem is not None}
            await _verify_node(conn, node_id, heads.get(node_id), checkpoints.valid_for(node_id),
                               summary, out, chunk_size, rules, failed, snapshots)
            tail = tail_problem(node_id, _last_signed(checkpoints.valid_for(node_id)),
                                summary.unsigned, (summary.last_seq or 0) - summary.unsigned + 1,
                                at, legacy_within_s)
            if tail is not None:
                out.add(tail)
        await rules.finish(conn)
        for problem in await snapshots.problems(conn):
            out.add(problem)
        pruned = {n.node_id: n.pruned_through for n in report.nodes}
        valid = {n: checkpoints.valid_for(n) for n in checkpoints.by_node}
        for problem in await witness_problems(conn, witnessed_heads(valid), pruned):
            out.add(problem)
    return report


def _last_signed(cps: list[Checkpoint]) -> Checkpoint | None:
    signed = [cp for cp in cps if cp.kind == "checkpoint"]
    return max(signed, key=lambda cp: cp.seq) if signed else None


async def _record_nodes(conn: AsyncConnection) -> list[str]:
    """Distinct node ids by a loose index scan: one index probe per node, not a full scan."""
    found: list[str] = []
    after = ""
    while True:
        nxt = (await conn.execute(
            select(func.min(audit_records.c.node_id)).where(audit_records.c.node_id > after)
        )).scalar()
        if nxt is None:
            break
        found.append(str(nxt))
        after = str(nxt)
    await conn.rollback()
    return found


async def _verify_node(
    conn: AsyncConnection,
    node_id: str,
    head: Row[Any] | None,
    cps: list[Checkpoint],
    summary: NodeSummary,
    out: _Collector,
    chunk_size: int,
    rules: RuleIndexCheck,
    failed: set[tuple[int, str]],
    snapshots: SnapshotCheck,
) -> None:
    """``cps``: the chain's valid checkpoints; ``failed``: ``(seq, sha256)`` of those
    there but reported invalid (a key not pinned), which links may name."""
    checkpoints = {cp.seq: cp for cp in cps if cp.kind == "checkpoint"}
    summary.checkpoints = len(checkpoints)
    for broken in link_problems(node_id, sorted((cp for cp in cps if cp.kind == "checkpoint"),
                                                key=lambda cp: cp.seq), present=failed):
        out.add(broken)
    tombstones = [cp for cp in cps if cp.kind == "tombstone"]
    expected, prev, prev_prev = 1, GENESIS, ""
    if tombstones:
        tomb = max(tombstones, key=lambda t: t.seq)
        match = checkpoints.get(tomb.seq)
        if match is None or match.head_hash != tomb.head_hash:
            out.add(Problem("checkpoint_mismatch", f"tombstone at seq {tomb.seq} matches no "
                            "signed checkpoint", node_id, tomb.seq))
        expected, prev = tomb.seq + 1, tomb.head_hash
        summary.pruned_through = tomb.seq
    if head is None:
        out.add(Problem("orphan", "records or checkpoints without a chain head row", node_id))
    limit = max([int(head.last_seq) if head is not None else 0, *checkpoints, 0])
    last_seq: int | None = None
    after = expected - 1
    while after < limit:
        rows = (await conn.execute(
            select(audit_records)
            .where(audit_records.c.node_id == node_id, audit_records.c.seq > after,
                   audit_records.c.seq <= limit)
            .order_by(audit_records.c.seq)
            .limit(chunk_size)
        )).all()
        await conn.rollback()
        if not rows:
            break
        chunk: dict[str, ChunkRecord] = {}
        for row in rows:
            seq = int(row.seq)
            body = parse_stored_body(row.body)
            problem = row_problem(row, body, node_id, expected, prev, prev_prev)
            if problem is not None:
                out.add(problem)
            if body is not None:
                chunk[str(row.id)] = ChunkRecord(node_id, seq, expected_rules(body))
                snapshots.note(body, node_id, seq, str(row.id))
            cp = checkpoints.get(seq)
            if cp is not None and cp.head_hash != row.hash:
                out.add(Problem("checkpoint_mismatch",
                                f"chain head at seq {seq} differs from the signed checkpoint: "
                                "a record up to here was rewritten", node_id, seq, str(row.id)))
            # Resynchronise on the stored hash so one break does not hide the next.
            prev_prev, prev = prev, str(row.hash)
            expected = seq + 1
            last_seq = seq
            summary.records += 1
            if summary.first_seq is None:
                summary.first_seq = seq
        await rules.check_chunk(conn, chunk)
        after = int(rows[-1].seq)
    summary.last_seq = last_seq
    if last_seq is not None:
        signed_through = max([summary.pruned_through, *checkpoints])
        summary.unsigned = max(0, last_seq - signed_through)
    # ``prev`` is now the stored hash of the last record (or the tombstone's head).
    for problem in head_row_problems(node_id, head, checkpoints, last_seq, prev,
                                     summary.pruned_through):
        out.add(problem)
    beyond = await beyond_head_problem(conn, node_id)
    if beyond is not None:
        out.add(beyond)
