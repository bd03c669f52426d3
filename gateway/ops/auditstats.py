"""Audit writer statistics as Prometheus series, without touching the writer.

``AuditWriter.stats`` is a ``WriterStats`` whose counters the writer bumps once
per committed batch (``records += len(batch)``), per failed batch and per
checkpoint. ``MeteredStats`` is a drop-in replacement that turns each bump
into an observation: batch size histogram, failure and checkpoint counters.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.writer import WriterStats
from gateway.ops import metrics


class MeteredStats(WriterStats):
    def __setattr__(self, name: str, value: Any) -> None:
        before = getattr(self, name, None)
        super().__setattr__(name, value)
        if not isinstance(before, int) or not isinstance(value, int) or value <= before:
            return
        delta = value - before
        if name == "records":
            metrics.AUDIT_BATCH_SIZE.observe(delta)
        elif name == "failures":
            metrics.AUDIT_BATCH_FAILURES.inc(delta)
        elif name == "checkpoints":
            metrics.AUDIT_CHECKPOINTS.inc(delta)
