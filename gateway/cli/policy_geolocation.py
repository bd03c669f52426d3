"""``gateway policy validate --check-geolocation``: the bundle's region rules
checked against the geolocation GATEWAY_GEOIP_DB configures (unset: the
offline RIR data, which gives countries only).

Files alone cannot say it: a rule naming Crimea (``UA-43``) validates clean
and never fires on a gateway without a City or Enterprise database. The
running gateway says it at start-up and on every reload
(``gateway.geo.region_blind``); this says it before the bundle ships. A
GATEWAY_GEOIP_DB that is not a readable country database is exit 2, as
``gateway serve`` would make it.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from gateway.cli.database import audit_settings
from gateway.cli.messages import error, stderr
from gateway.geo.region_blind import RegionBlindCheck, blind_source
from gateway.policy import schema as s


def warn_region_blind(console: Console, bundle: s.Bundle) -> None:
    """A warning when the bundle's region rules cannot fire here, then the source."""
    settings = audit_settings()
    try:
        source = blind_source(settings)
    except Exception as exc:  # noqa: BLE001 - maxminddb's errors vary by cause; name the file
        error(stderr(), f"GATEWAY_GEOIP_DB: {settings.geoip_db} is not a readable "
                        f"country database ({exc})")  # fmt: skip
        raise typer.Exit(2) from None
    for warning in RegionBlindCheck(source)(bundle):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    where = settings.geoip_db if settings.geoip_db is not None else "offline RIR data (iptocc)"
    gives = "countries only" if source is not None else "countries and regions"
    console.print(f"  geolocation: {where} gives {gives}", markup=False)
