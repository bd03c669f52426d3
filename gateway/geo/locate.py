"""IP -> Origin: which client address to believe, and where it is.

The client address is the socket peer, unless the peer is a trusted proxy
(``GATEWAY_TRUSTED_PROXIES``): then ``X-Forwarded-For`` is walked from the
right, skipping trusted hops, and the first untrusted address is the client.
Everything left of it was written by the client itself and is ignored, so a
client cannot pick its own country by sending the header. A walk that ends on
a trusted address (no header, or every hop trusted) names no client: the
origin is unknown, not the proxy's country (``_unnamed``). A hop that is not
an address (``unknown``, ``for=…``) ends the walk: the origin is unknown, the
trusted proxy that wrote it is the recorded address, and a warning says so.

Country lookups use the offline RIR registration data of ``iptocc`` by
default, or a MaxMind-format ``.mmdb`` (``GATEWAY_GEOIP_DB``, ``gateway.geo.mmdb``)
read with ``geoip2``: a country database gives the country, a city or
enterprise database also the ISO 3166-2 region (largest subdivision), which
is what region rules such as UA-43 (Crimea) need. Private, reserved and
unknown addresses resolve to an unknown origin, and so does a lookup that
raises (logged, at most once a minute, and counted). An IPv6 address that carries
an IPv4 one (6to4, Teredo, NAT64, IPv4-compatible) is located on the IPv4
address (``gateway.geo.addresses``).

One LRU cache maps an address as written (the peer's, or one hop of the
header) to what it is: the parsed address, whether it is a trusted proxy, and
its origin. Keys are address text of at most ``MAX_ADDRESS_CHARS``, never a
whole header: ``X-Forwarded-For`` is written by the client, and a cache keyed
on it held up to 65,536 headers of any length, before authentication, for
anyone who could reach the port (1 MB headers: hundreds of MB per worker).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from gateway.geo.addresses import IPAddress, embedded_ipv4, parse_ip
from gateway.geo.mmdb import MmdbLookup
from gateway.geo.origin import Origin
from gateway.geo.region_blind import IPTOCC_SOURCE, mmdb_source
from gateway.ops import metrics
from gateway.ops.throttle import Throttle
from gateway.settings import IPNetwork, Settings

log = logging.getLogger("gateway.geo")

CACHE_SIZE = 16_384
"""Addresses remembered: about 500 bytes each when full (8 MB a worker). A miss
costs a parse and a lookup (a few microseconds with iptocc), so a bigger cache
would buy little; it is bounded because its keys come from clients."""
MAX_ADDRESS_CHARS = 64
"""Longer than any address a hop can carry (``[<IPv6 with an IPv4 tail>]:65535``
is 53): longer text is not parsed, and never becomes a cache key."""
WIDEST_TRUSTED = {4: 8, 6: 32}
"""Prefix lengths below which a trusted network draws a start-up warning: a
load balancer's network is narrower, and every client inside a trusted network
chooses its own origin country by writing X-Forwarded-For."""
Lookup = Callable[[str], tuple[str | None, str | None]]


def _public(address: IPAddress) -> bool:
    return address.is_global


def iptocc_lookup(ip: str) -> tuple[str | None, str | None]:
    from iptocc import country_code

    try:
        code = country_code(ip)
    except ValueError:
        return None, None
    return (code.upper() if isinstance(code, str) and len(code) == 2 else None), None


@dataclass(frozen=True, slots=True)
class _Place:
    """What one address as written is (a cache entry)."""

    address: IPAddress | None
    trusted: bool
    origin: Origin
    """Where the address is: the answer when nothing to its left is believed."""


_NOWHERE = _Place(None, False, Origin(None))


class _NotCached(Exception):
    """Carries a place out of the cache without the cache keeping it."""

    def __init__(self, place: _Place) -> None:
        self.place = place


class IPLocator:
    """The ``Locator`` stage (``gateway.stages.Locator``)."""

    def __init__(
        self,
        lookup: Lookup,
        trusted: Sequence[IPNetwork] = (),
        cache_size: int = CACHE_SIZE,
        nat64: Sequence[ipaddress.IPv6Network] = (),
        blind_source: str | None = None,
    ) -> None:
        self.blind_source = blind_source
        """The geolocation, described, when ``lookup`` gives no regions (None: it
        does, or it is not known): ``gateway.geo.region_blind``."""
        self._trusted = tuple(trusted)
        self._nat64 = tuple(nat64)
        self._lookup = lookup
        # Origin is immutable and depends only on the address: memoising it
        # skips parsing and lookup for repeat clients and proxies.
        self._places = lru_cache(maxsize=cache_size)(self._read)
        self._failures = Throttle()
        self._garbled = Throttle()
        self._unforwarded = Throttle()

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in net for net in self._trusted)

    def _place(self, text: str) -> _Place:
        if len(text) > MAX_ADDRESS_CHARS:
            return _NOWHERE
        try:
            return self._places(text)
        except _NotCached as failed:
            return failed.place

    def _read(self, text: str) -> _Place:
        address = parse_ip(text)
        if address is None:
            return _NOWHERE
        trusted = bool(self._trusted) and self._is_trusted(address)
        ip = str(address)
        # The address is recorded as received; a transition address is
        # located where the IPv4 host it carries is (gateway.geo.addresses).
        located = embedded_ipv4(address, self._nat64) or address
        if not _public(located):
            return _Place(address, trusted, Origin(ip))
        try:
            country, region = self._lookup(str(located))
        except Exception as exc:  # whatever the database raises
            # Never a 500 (which records nothing): the origin is unknown, and
            # the policy's handling of unknown origins decides. Not cached, so
            # the address is looked up again once the database reads again.
            self._lookup_failed(ip, exc)
            raise _NotCached(_Place(address, trusted, Origin(ip))) from exc
        return _Place(address, trusted, Origin(ip, country, region))

    def _unreadable(self, proxy: _Place, hop: str) -> _Place:
        """What is known when trusted ``proxy`` wrote ``hop``, which is no address.

        The origin stays unknown: locating the proxy would give the proxy's
        country, not the client's. But the record names the proxy: a null
        client_ip hid which proxy sent the request, and which one to fix (its
        address is in GATEWAY_TRUSTED_PROXIES, so account-farm reports never
        link customers through it).
        """
        count = self._garbled.due()
        if count:
            log.warning(
                "trusted proxy %s sent an X-Forwarded-For hop that is not an address: %r "
                "(%d such requests since the last such line; origin taken as unknown)",
                proxy.origin.client_ip, hop[:MAX_ADDRESS_CHARS], count,
            )  # fmt: skip
        return _Place(proxy.address, proxy.trusted, Origin(proxy.origin.client_ip))

    def _unnamed(self, proxy: _Place) -> _Place:
        """The client when the walk ends on trusted ``proxy``: no hop names anyone else.

        Not located where the proxy is: that is the operator's network, not the
        client's country. Located, a trusted load balancer with a public US
        address that forwarded without X-Forwarded-For (one configured for
        RFC 7239 ``Forwarded:`` only, which is not read) made every client a US
        origin, and no origin rule could refuse anyone. The origin is unknown,
        the proxy is the recorded address, and a warning says so. An address
        that locates nowhere anyway (loopback, private) is returned as it is.
        """
        if proxy.origin.country is None:
            return proxy
        count = self._unforwarded.due()
        if count:
            log.warning(
                "trusted proxy %s forwarded a request naming no client in X-Forwarded-For "
                "(%d such requests since the last such line; origin taken as unknown, not "
                "the proxy's %s)", proxy.origin.client_ip, count, proxy.origin.country,
            )  # fmt: skip
        return _Place(proxy.address, proxy.trusted, Origin(proxy.origin.client_ip))

    def _lookup_failed(self, ip: str, exc: Exception) -> None:
        metrics.GEO_LOOKUP_ERRORS.inc()
        count = self._failures.due()
        if count:
            log.error(
                "geolocation lookup failed for %s (%d failures since the last such line; "
                "answered as unknown origin): %s: %s",
                ip, count, type(exc).__name__, exc, exc_info=exc,
            )  # fmt: skip

    def client_ip(self, peer_ip: str | None, forwarded_for: str | None) -> IPAddress | None:
        return self._client(peer_ip, forwarded_for).address

    def locate(self, peer_ip: str | None, forwarded_for: str | None) -> Origin:
        return self._client(peer_ip, forwarded_for).origin

    def _client(self, peer_ip: str | None, forwarded_for: str | None) -> _Place:
        peer = self._place(peer_ip) if peer_ip else _NOWHERE
        if not peer.trusted:
            return peer  # the header is not read, nor is it any part of a cache key
        if not forwarded_for:
            # Tested here, not in _unnamed: a private proxy (the usual case) pays no call.
            return peer if peer.origin.country is None else self._unnamed(peer)
        leftmost = peer
        for hop in reversed(forwarded_for.split(",")):
            text = hop.strip()
            if not text:
                continue
            place = self._place(text)
            if place.address is None:
                # A trusted proxy appended something that is not an address:
                # nothing further left can be believed.
                return self._unreadable(leftmost, text)
            if not place.trusted:
                return place
            leftmost = place
        return self._unnamed(leftmost)  # every hop was a trusted proxy


def too_wide(networks: Sequence[IPNetwork]) -> list[IPNetwork]:
    """The trusted networks wider than ``WIDEST_TRUSTED`` allows without a warning."""
    return [net for net in networks if net.prefixlen < WIDEST_TRUSTED[net.version]]


def build_locator(settings: Settings) -> IPLocator:
    """The locator for these settings: the .mmdb when configured, else iptocc.

    Its ``blind_source`` names the geolocation when it gives no regions: the
    policy holder's ``RegionBlindCheck`` (``gateway.geo.region_blind``) says
    then, at start-up and on every reload, that the bundle's region rules
    cannot fire."""
    wide = too_wide(settings.trusted_proxies)
    if wide:
        # Not refused: a private /7 or a cloud's /6 may be deliberate. But
        # 0.0.0.0/0 started silently, and with it any client chose its country.
        log.warning(
            "GATEWAY_TRUSTED_PROXIES trusts networks wider than /%d (IPv4) or /%d (IPv6): "
            "%s%s. Every client in a trusted network can write X-Forwarded-For and so "
            "choose its origin country: list only the networks of your own proxies",
            WIDEST_TRUSTED[4], WIDEST_TRUSTED[6], ", ".join(map(str, wide)),
            " (the whole internet)" if any(net.prefixlen == 0 for net in wide) else "",
        )  # fmt: skip
    lookup: Lookup
    blind: str | None
    if settings.geoip_db is not None:
        mmdb = lookup = MmdbLookup(settings.geoip_db)
        log.info("geolocation from %s (%s)", settings.geoip_db, mmdb.database_type)
        blind = None if mmdb.gives_regions else mmdb_source(settings, mmdb.database_type)
    else:
        lookup = iptocc_lookup
        log.info("geolocation from offline RIR data (iptocc); country level only")
        blind = IPTOCC_SOURCE
    return IPLocator(lookup, settings.trusted_proxies, nat64=settings.nat64_prefixes,
                     blind_source=blind)  # fmt: skip
