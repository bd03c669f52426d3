"""Where a request comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Origin:
    """The client address the gateway believes and what it resolves to.

    ``country`` is ISO 3166-1 alpha-2, ``region`` ISO 3166-2 (``UA-43``) when a
    city database is configured; both are None when unknown (private ranges,
    no data), which rules can match with ``origin_unknown``.
    """

    client_ip: str | None
    country: str | None = None
    region: str | None = None

    @property
    def unknown(self) -> bool:
        return self.country is None
