"""libpq-style options in a ``postgresql+asyncpg://`` URL.

Operators copy connection strings from their provider, and those speak libpq:
``?sslmode=require``, ``sslrootcert=…``, ``application_name=…``. SQLAlchemy's
asyncpg dialect hands every query parameter to ``asyncpg.connect()`` as a
keyword argument, which knows none of these: the first connection failed with
``TypeError: connect() got an unexpected keyword argument 'sslmode'``, a
traceback from `gateway db upgrade` and a dead `serve`.

asyncpg does read them from a DSN (its own parser knows the libpq names, and
passes any other parameter to the server as a run-time setting, as libpq's
``options`` would). So the parameters ``connect()`` does not take as keywords
are moved out of the URL into a query-only ``dsn`` connect argument; the
host, port, user, password and database stay keyword arguments, which
asyncpg lets override the DSN.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.engine import URL, make_url

# Query parameters that SQLAlchemy's asyncpg dialect consumes itself or
# passes on as ``asyncpg.connect()`` keywords (asyncpg 0.29+ signature).
_KEYWORDS = frozenset({
    "host", "port", "user", "password", "passfile", "database", "service", "servicefile",
    "timeout", "statement_cache_size", "max_cached_statement_lifetime",
    "max_cacheable_statement_size", "command_timeout", "ssl", "direct_tls",
    "server_settings", "target_session_attrs", "krbsrvname", "gsslib",
    "prepared_statement_cache_size", "prepared_statement_name_func",
})  # fmt: skip


def split_dsn_options(database_url: str) -> tuple[URL, str | None]:
    """The URL without the parameters ``asyncpg.connect()`` would refuse, and
    those parameters as a query-only DSN (None when there are none)."""
    url = make_url(database_url)
    moved = {k: v for k, v in url.query.items() if k not in _KEYWORDS}
    if not moved:
        return url, None
    pairs = [(k, item) for k, v in moved.items() for item in ((v,) if isinstance(v, str) else v)]
    return url.difference_update_query(moved), "postgresql://?" + urlencode(pairs)
