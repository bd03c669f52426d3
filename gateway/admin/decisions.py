"""``/admin/v1/decisions``: the decision log for auditors (SPEC section 4).

``GET /decisions`` pages with a keyset cursor, ``GET /decisions/export``
streams JSONL (manifest as the last line) or CSV (no manifest: the CLI writes
CSV with a sidecar manifest), ``GET /decisions/{id}``
returns one record with its outcomes. Role: auditor (admin passes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from gateway.admin.auth import AdminActor, require_roles
from gateway.admin.query_errors import as_query_error, known_params
from gateway.audit.export import Exporter
from gateway.audit.filters import FilterError, decision_filters
from gateway.audit.ids import is_id
from gateway.audit.query import MAX_LIMIT, DecisionFilters, get_decision, list_decisions
from gateway.deps import ServicesDep
from gateway.head import is_head

router = APIRouter(prefix="/admin/v1", tags=["audit"])
Auditor = Annotated[AdminActor, Depends(require_roles("auditor"))]


def _filters(
    customer_id: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    rule_id: Annotated[str | None, Query(
        description="A rule that decided (in rule_ids)")] = None,
    report_rule_id: Annotated[str | None, Query(
        description="A report-mode rule that matched (in report_rule_ids)")] = None,
    model: str | None = None,
    origin: Annotated[str | None, Query(
        description="ISO 3166-1 alpha-2 country or ISO 3166-2 region code")] = None,
    citizenship: Annotated[str | None, Query(
        description="ISO 3166-1 alpha-2 country the principal is a citizen of")] = None,
    from_: Annotated[str | None, Query(
        alias="from", description="RFC 3339 time with a zone (inclusive)")] = None,
    to: Annotated[str | None, Query(
        description="RFC 3339 time with a zone (exclusive)")] = None,
) -> DecisionFilters:
    # Times arrive as text and are parsed by the validation the CLI shares: FastAPI's
    # own datetime parsing takes naive times, bare dates and unix seconds.
    try:
        return decision_filters(customer_id=customer_id, decision=decision, rule_id=rule_id,
                                report_rule_id=report_rule_id, model=model, origin=origin,
                                citizenship=citizenship, from_=from_, to=to)
    except FilterError as exc:
        raise as_query_error(exc) from None


Filters = Annotated[DecisionFilters, Depends(_filters)]
_FILTER_PARAMS = ("customer_id", "decision", "rule_id", "report_rule_id", "model", "origin",
                  "citizenship", "from", "to")  # fmt: skip


@router.get("/decisions", dependencies=[Depends(known_params(*_FILTER_PARAMS, "cursor", "limit"))])
async def list_decisions_route(
    services: ServicesDep,
    _actor: Auditor,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    if cursor and not is_id(cursor):
        # As /customers and /admin-actions answer a cursor they did not hand out.
        raise HTTPException(400, "invalid cursor")
    items, next_cursor = await list_decisions(services.sessions, filters, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/decisions/export", dependencies=[Depends(known_params(*_FILTER_PARAMS, "format"))])
async def export_decisions_route(
    request: Request,
    services: ServicesDep,
    _actor: Auditor,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    exporter = Exporter(services.sessions, filters, format)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    # JSONL carries its manifest as the last line; a CSV's manifest is a sidecar file,
    # which one HTTP response cannot carry: say so, rather than let a client look for one
    # (verifiable CSV: `gateway audit export --format csv -o FILE`).
    manifest = "last-line" if format == "jsonl" else "none"
    # HEAD: the GET's headers, without reading the log to send it nowhere.
    body = _nothing() if is_head(request.scope) else exporter.lines()
    return StreamingResponse(
        body,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="decisions-{stamp}.{format}"',
                 "x-gateway-export-mode": exporter.mode,
                 "x-gateway-export-manifest": manifest},
    )


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


@router.get("/decisions/{record_id}")
async def get_decision_route(
    services: ServicesDep, _actor: Auditor, record_id: str
) -> dict[str, Any]:
    item = await get_decision(services.sessions, record_id)
    if item is None:
        raise HTTPException(404, f"no audit record {record_id}")
    return item
