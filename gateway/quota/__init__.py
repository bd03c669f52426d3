"""Quotas: the meter and settle stages (requests, tokens, stream slots).

Public API for the pipeline and ``app.py``: ``build_meter``, ``Meter``,
``describe_refusal``. See ``docs/quotas.md`` for the semantics.
"""

from gateway.quota.describe import describe_refusal
from gateway.quota.headers import format_duration
from gateway.quota.leases import STORE_ERRORS, Reservation
from gateway.quota.meter import Meter, build_meter

__all__ = [
    "STORE_ERRORS",
    "Meter",
    "Reservation",
    "build_meter",
    "describe_refusal",
    "format_duration",
]
