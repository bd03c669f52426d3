"""``gateway audit verify --export FILE``: check an export without the database.

Needs only the file, its manifest (last JSONL line, or ``FILE.manifest.json``
beside a CSV) and, ideally, the gateway's public key obtained separately
(``gateway audit public-key``): the keys inside the manifest prove only that
the file is self-consistent, not who signed it.

Per record: its hash is recomputed from its canonical body and ``prev_hash``;
in a CSV, where only the ``record`` column is hashed, every readable column
must equal what the export derives from that record (and the header must be
the export's column list). The manifest's ``data_sha256`` must be present and
match the file.
Per node: consecutive records must link; a record at a checkpoint's ``seq``
must equal the signed head; the contiguous run leading to a checkpoint is
then *proven* (a second preimage of SHA-256 would be needed to alter it). The
file's first and last record, and count, per node must be what the manifest
says, and no signed checkpoint in the manifest may lie outside them (the
export includes only those inside): records cut from either end are found
even when the forger fixed up the manifest's unsigned figures.

Not detectable offline: records after the export's last checkpoint cut
together with the manifest's figures (nothing signed covers them), or the
start of a time-range export cut and the manifest's start figures moved to
match, when no checkpoint falls in the removed part. The database verifier,
or a second export, covers those.

Reading the file and its manifest is ``offline_read.py``; what the manifest's
checkpoints say is ``offline_links.py``; a filtered export's filters,
``offline_filters.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.audit.chain import GENESIS, chain_hash
from gateway.audit.offline_filters import FilterCheck
from gateway.audit.offline_links import (
    all_witnesses,
    judged_at,
    read_checkpoints,
    tail_problems,
    witness_check,
)
from gateway.audit.offline_read import load_manifest, read_records
from gateway.audit.ownership_snapshots import ExportSnapshotCheck
from gateway.audit.policy_texts import carried_text, text_version
from gateway.audit.problems import Problem
from gateway.audit.signing import fingerprint, load_public_key


@dataclass(slots=True)
class ExportReport:
    mode: str = "?"
    records: int = 0
    proven: int = 0
    """Records in a contiguous run that reaches a signed checkpoint."""
    unsigned: int = 0
    """Chained, but after the last checkpoint of their run."""
    unlinked: int = 0
    """Filtered exports: consistent on their own, not linked to a checkpoint."""
    filters: dict[str, Any] = field(default_factory=dict)
    """What a filtered export claims to select (the manifest's ``filters``)."""
    keys_from_manifest: bool = False
    judged_at: datetime | None = None
    """The time unsigned records were judged at, and ``judged_by`` where it came from."""
    judged_by: str = ""
    policy_versions: list[str] = field(default_factory=list)
    """The policy versions the records name whose text the export carries (proven)."""
    policy_texts_missing: list[str] = field(default_factory=list)
    """Versions named without their text (decided before the log kept texts)."""
    ownership_snapshots: list[str] = field(default_factory=list)
    """Digests of the ownership trees records name that the manifest carries (proven)."""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ok"] = self.ok
        return doc


@dataclass(slots=True)
class _Run:
    first_seq: int | None = None
    first_prev_hash: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    count: int = 0
    pending: int = 0
    linked: bool = False


def verify_export(
    path: Path, manifest_path: Path | None = None, trusted_keys: Iterable[bytes] | None = None,
    at: datetime | None = None,
) -> ExportReport:
    """``at``: when the export's unsigned tails are judged (``offline_links.py``)."""
    fmt, manifest = load_manifest(path, manifest_path)
    report = ExportReport(mode=str(manifest.get("mode", "?")),
                          filters=dict(manifest.get("filters") or {}))
    if trusted_keys is None:
        report.keys_from_manifest = True
        keys = {fp: load_public_key(pem) for fp, pem in manifest.get("public_keys", {}).items()}
        keys = {fp: raw for fp, raw in keys.items() if fingerprint(raw) == fp}
    else:
        keys = {fingerprint(k): k for k in trusted_keys}
    signed = read_checkpoints(manifest, keys, report.problems)
    heads = {(cp.node_id, cp.seq): cp.head_hash for cp in signed.all() if cp.kind == "checkpoint"}
    runs: dict[str, _Run] = {}
    digest = hashlib.sha256()
    witnesses = all_witnesses(signed)
    selection = FilterCheck(report.mode, report.filters)
    named: set[str] = set()
    texts: dict[str, str] = {}
    trees = ExportSnapshotCheck()
    for lineno, item, body in read_records(path, fmt, digest, report.problems):
        _check_record(report, runs, heads, lineno, item, body)
        witness_check(witnesses, item, report.problems)
        selection.check(lineno, item)
        trees.note(item, lineno)
        if isinstance(version := item.get("policy_version"), str):
            named.add(version)
        if (carried := carried_text(item)) is not None:
            texts.setdefault(*carried)
    report.problems += selection.problems
    _check_policies(report, manifest, named, texts)
    report.ownership_snapshots = trees.check(manifest, report.problems)
    for run in runs.values():
        if run.linked:
            report.unsigned += run.pending
        else:
            report.unlinked += run.pending
    _check_manifest_totals(report, manifest, digest.hexdigest())
    _check_ends(report, manifest, runs, heads)
    report.judged_at, report.judged_by = judged_at(manifest, at)
    ends = {n: (r.first_seq or 0, r.last_seq or 0) for n, r in runs.items()}
    report.problems += tail_problems(report.mode, signed, ends, report.judged_at)
    return report


def _check_record(report: ExportReport, runs: dict[str, _Run], heads: dict[tuple[str, int], str],
                  lineno: int, item: dict[str, Any], body: bytes) -> None:
    report.records += 1
    node_id, seq, rid = str(item.get("node_id")), int(item.get("seq") or 0), item.get("id")
    prev_hash, stored = str(item.get("prev_hash")), str(item.get("hash"))
    if chain_hash(prev_hash, body) != stored:
        report.problems.append(Problem("edited", f"line {lineno}: record does not match its "
                                       "hash", node_id, seq, rid))
    if seq == 1 and prev_hash != GENESIS:
        report.problems.append(Problem("chain_break", f"line {lineno}: seq 1 starts a chain but "
                                       "its prev_hash is not 64 zeros", node_id, seq, rid))
    run = runs.setdefault(node_id, _Run())
    if run.first_seq is None:
        run.first_seq, run.first_prev_hash = seq, prev_hash
    run.count += 1
    if run.last_seq is not None and seq == run.last_seq + 1:
        if prev_hash != run.last_hash:
            report.problems.append(Problem("chain_break", f"line {lineno}: does not link to "
                                           f"seq {run.last_seq}", node_id, seq, rid))
    else:
        if run.last_seq is not None and report.mode == "full":
            report.problems.append(Problem("gap", f"line {lineno}: seq {seq} follows "
                                           f"{run.last_seq}: records missing", node_id, seq, rid))
        if run.linked:
            report.unsigned += run.pending
        else:
            report.unlinked += run.pending
        run.pending, run.linked = 0, report.mode == "full"
    run.pending += 1
    run.last_seq, run.last_hash = seq, stored
    head = heads.get((node_id, seq))
    if head is not None:
        if head != stored:
            report.problems.append(Problem("checkpoint_mismatch", f"line {lineno}: differs from "
                                           "the signed checkpoint", node_id, seq, rid))
        else:
            report.proven += run.pending
            run.pending, run.linked = 0, True


def _check_policies(report: ExportReport, manifest: dict[str, Any], named: set[str],
                    texts: dict[str, str]) -> None:
    """The manifest's policy texts must each hash to the version they are filed under
    (the version is what the signed records name); ``texts`` come from the
    export's own ``policy_reload`` records, already checked."""
    for version, text in sorted((manifest.get("policies") or {}).items()):
        if not isinstance(text, str) or text_version(text) != version:
            report.problems.append(Problem("edited", f"the manifest's policy text for version "
                                           f"{version} does not hash to it: altered"))
        else:
            texts.setdefault(version, text)
    report.policy_versions = sorted(named & set(texts))
    report.policy_texts_missing = sorted(named - set(texts))


def _check_manifest_totals(report: ExportReport, manifest: dict[str, Any],
                           data_sha256: str) -> None:
    if manifest.get("record_count") != report.records:
        report.problems.append(Problem("truncated", f"manifest says {manifest.get('record_count')}"
                                       f" records, the file holds {report.records}"))
    # The digest is what binds every byte an auditor reads to the manifest: a
    # manifest without one proves nothing about the file, so it fails.
    if "data_sha256" not in manifest:
        report.problems.append(Problem("edited", "the manifest has no data_sha256: the file's "
                                       "content is not bound to it"))
    elif manifest["data_sha256"] != data_sha256:
        report.problems.append(Problem("edited", "file content differs from the manifest digest"))


def _check_ends(report: ExportReport, manifest: dict[str, Any], runs: dict[str, _Run],
                heads: dict[tuple[str, int], str]) -> None:
    """Each chain's ends in the file against what the manifest and its checkpoints promise.

    The export writes, per node, the first and last record's seq and hashes and
    the count, and only checkpoints inside ``first_seq..last_seq`` (plus
    tombstones). So records cut from either end show as a mismatch with those
    figures, and, when the forger fixed the figures up too, as a signed
    checkpoint outside the records (the signatures cannot be fixed up).
    """
    nodes: dict[str, Any] = manifest.get("nodes", {})
    for node_id in sorted(set(runs) - set(nodes)):
        report.problems.append(Problem("inserted", f"node {node_id}: records of a chain the "
                                       "manifest does not list", node_id))
    for node_id, node in nodes.items():
        run = runs.get(node_id)
        if run is None:
            report.problems.append(Problem("truncated", f"node {node_id}: the manifest lists it, "
                                           "the file holds none of its records", node_id))
            continue
        signed = sorted(seq for (nid, seq) in heads if nid == node_id)
        first, last = run.first_seq or 0, run.last_seq or 0
        if (node.get("first_seq"), node.get("first_prev_hash")) != (first, run.first_prev_hash):
            report.problems.append(Problem(
                "truncated", f"node {node_id}: the manifest says the export starts at seq "
                f"{node.get('first_seq')}, the file at seq {first} (or with another prev_hash): "
                "records at the start were removed", node_id, first))
        if signed and signed[0] < first:
            report.problems.append(Problem(
                "truncated", f"node {node_id}: signed checkpoint at seq {signed[0]} but the first "
                f"record is seq {first}: records before it were removed", node_id, signed[0]))
        if (node.get("last_seq"), node.get("last_hash")) != (last, run.last_hash):
            report.problems.append(Problem(
                "truncated", f"node {node_id}: the manifest says the export ends at seq "
                f"{node.get('last_seq')}, the file at seq {last} (or with another hash): "
                "records at the end were removed or changed", node_id, last))
        if signed and signed[-1] > last:
            report.problems.append(Problem(
                "truncated", f"node {node_id}: signed checkpoint at seq {signed[-1]} but the last "
                f"record is seq {last}: records after it were removed", node_id, last + 1))
        if node.get("count") != run.count:
            report.problems.append(Problem(
                "truncated", f"node {node_id}: the manifest counts {node.get('count')} records, "
                f"the file holds {run.count}", node_id))
