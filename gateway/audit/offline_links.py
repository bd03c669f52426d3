"""Export verification's share of ``continuity.py``: what the manifest's signed
checkpoints say the file must hold.

A full export's run per chain goes on to the checkpoint that signs its last
record, and the manifest carries the chain's checkpoint before the run (its
*anchor*). So in a file nobody touched, records after a run's last checkpoint
are only the chain's newest, unsigned when the export ran. Offline verify
holds them to the writer's signing cadence, judged at ``at``: the time the
auditor gives (``--at``: when the file was received), else the manifest's
``generated_at``, which the file's holder can change (the report says which).

Chains whose newest checkpoint in the export is in the old, unlinked format
(signed before links existed, and exported without run extension) keep the
old rule: their unsigned records are counted, not failed.

Checkpoints also sign the heads of the other chains: a record of the export
at a head another chain signed must have that hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.audit.checkpoints import Checkpoint, check_checkpoint
from gateway.audit.continuity import Witness, link_problems, tail_problem, witness_problem
from gateway.audit.problems import Problem


@dataclass(slots=True)
class ManifestCheckpoints:
    """The manifest's valid signed checkpoints and tombstones, and each chain's anchor."""

    by_node: dict[str, list[Checkpoint]] = field(default_factory=dict)
    anchors: dict[str, Checkpoint] = field(default_factory=dict)

    def all(self) -> list[Checkpoint]:
        return [cp for cps in self.by_node.values() for cp in cps]


def _check(node_id: str, doc: Mapping[str, Any], keys: Mapping[str, bytes],
           problems: list[Problem]) -> Checkpoint | None:
    cp = check_checkpoint(doc["payload"], doc["signature"], doc["key_fingerprint"], keys)
    if cp.problem is not None or cp.node_id != node_id:
        problems.append(Problem(cp.problem or "bad_signature",
                                cp.problem_message or "checkpoint of another node",
                                node_id, cp.seq))
        return None
    return cp


def read_checkpoints(manifest: Mapping[str, Any], keys: Mapping[str, bytes],
                     problems: list[Problem]) -> ManifestCheckpoints:
    """Every checkpoint the manifest carries, checked; bad ones are ``problems``."""
    out = ManifestCheckpoints()
    for node_id, node in manifest.get("nodes", {}).items():
        for doc in node.get("checkpoints", []):
            if (cp := _check(node_id, doc, keys, problems)) is not None:
                out.by_node.setdefault(node_id, []).append(cp)
        anchor = node.get("anchor")
        cp = _check(node_id, anchor, keys, problems) if anchor else None
        if cp is not None and cp.kind == "checkpoint":
            out.anchors[node_id] = cp
    return out


def judged_at(manifest: Mapping[str, Any], at: datetime | None) -> tuple[datetime | None, str]:
    """When the export's unsigned tails are judged, and where that time comes from."""
    if at is not None:
        return at, "--at"
    try:
        return datetime.fromisoformat(str(manifest["generated_at"])), "generated_at"
    except (KeyError, ValueError):
        return None, "nothing (the manifest has no generated_at)"


def tail_problems(mode: str, signed: ManifestCheckpoints, ends: Mapping[str, tuple[int, int]],
                  at: datetime | None) -> list[Problem]:
    """Per chain of the export: links between its checkpoints; in a full export, its
    unsigned tail."""
    problems: list[Problem] = []
    for node_id, (first, last) in sorted(ends.items()):
        anchor = signed.anchors.get(node_id)
        cps = sorted([*([anchor] if anchor else []),
                      *(cp for cp in signed.by_node.get(node_id, []) if cp.kind == "checkpoint")],
                     key=lambda cp: cp.seq)
        # The anchor's own predecessor is not in the export: its link is not checked.
        problems += link_problems(node_id, cps, anchored=True)
        if mode != "full" or (cps and cps[-1].format < 2):
            continue
        newest = cps[-1] if cps else None
        unsigned = last - max(newest.seq if newest else 0, first - 1)
        if at is None and unsigned > 0:
            problems.append(Problem("unsigned", f"{unsigned} records of chain {node_id} are "
                                    "signed by none and the manifest has no time to judge them "
                                    "at: pass --at", node_id, last - unsigned + 1))
        elif at is not None:
            tail = tail_problem(node_id, newest, unsigned, last - unsigned + 1, at)
            problems += [tail] if tail is not None else []
    return problems


def all_witnesses(signed: ManifestCheckpoints) -> dict[tuple[str, int], Witness]:
    """Every head of a chain that another chain's checkpoint in the export signed."""
    out: dict[tuple[str, int], Witness] = {}
    for cp in [*signed.all(), *signed.anchors.values()]:
        for other, (seq, head) in cp.nodes.items():
            if other != cp.node_id:
                out.setdefault((other, seq), Witness(seq, head, cp.node_id, cp.seq))
    return out


def witness_check(witnesses: Mapping[tuple[str, int], Witness], item: Mapping[str, Any],
                  problems: list[Problem]) -> None:
    node_id, seq = str(item.get("node_id")), item.get("seq")
    witness = witnesses.get((node_id, seq)) if isinstance(seq, int) else None
    if witness is not None:
        problem = witness_problem(node_id, witness, str(item.get("hash")))
        problems += [problem] if problem is not None else []
