"""``gateway policy explain``: why a customer's request would be refused, or allowed.

Exit codes as ``policy test``: 0 the request would be allowed, 1 refused,
2 usage error (no such directory, customer or database, bad option).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from gateway.cli.policy_explain_db import read_customer, read_key, read_quota_usage, usage_error
from gateway.geo.origin import Origin
from gateway.policy.compiled import compile_bundle
from gateway.policy.explain_customer import ScopedKey
from gateway.policy.explain_input import ExplainIn, document, input_problems, run_explain
from gateway.policy.explain_key import KEY_ID_PROBLEM, KeyRecord, explain_key_id
from gateway.policy.explain_usage import with_usage
from gateway.policy.loader import LoadResult, pydantic_message, rule_locations
from gateway.policy.testing import origin_of
from gateway.policy.yamlsrc import parse_file

_usage = usage_error


def _json_arg(console: Console, option: str, value: str) -> Any:
    """A JSON text, or the path of a file holding one (JSON or YAML, as a policy
    test's principal is written: read by the same YAML reader)."""
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _usage(console, f"{option}: not JSON ({exc})") from None
    path = Path(value)
    if not path.is_file():
        raise _usage(console, f"{option}: {value}: no such file (or give the JSON inline)")
    parsed = parse_file(path, value)
    if parsed.errors or parsed.data is None:
        problems = "; ".join(str(e) for e in parsed.errors) or "empty file"
        raise _usage(console, f"{option}: {problems}")
    return parsed.data


def _locate(client_ip: str) -> Origin:
    # The gateway's own geo stage and settings (GATEWAY_GEOIP_DB or the RIR data).
    from gateway.geo.locate import build_locator
    from gateway.settings import Settings

    return build_locator(Settings(demo=True)).locate(client_ip, None)


def explain_cmd(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Policy bundle (default: GATEWAY_POLICY_DIR, the bundle in force)."),
    ] = None,
    customer: Annotated[
        str | None, typer.Option(help="Customer id: its record in GATEWAY_DATABASE_URL.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="API key id or gk_<id> prefix (never the secret): its customer, "
                          "through its scope, as a request on it."),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option(help="A principal as policy tests write it: JSON, or a YAML/JSON file."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="The model requested.")] = None,
    endpoint: Annotated[str, typer.Option(help="The proxied route.")] = "/v1/chat/completions",
    capability: Annotated[
        list[str] | None, typer.Option("--capability", help="A capability (repeatable).")
    ] = None,
    body: Annotated[
        Path | None,
        typer.Option(help="A request body (JSON file), classified as the gateway does."),
    ] = None,
    origin: Annotated[str | None, typer.Option(help="Origin country or region: DE, UA-43.")] = None,
    client_ip: Annotated[
        str | None, typer.Option("--client-ip", help="Client address, located by the geo stage.")
    ] = None,
    at: Annotated[str | None, typer.Option(help="RFC 3339 instant (default: now).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the document as JSON.")] = False,
) -> None:
    """Why would this request be refused? The verdict, then every rule in order."""
    from gateway.cli.policy import _console, _load
    from gateway.cli.policy_explain_print import print_explanation

    console = _console()
    raw: dict[str, Any] = {"request": {"endpoint": endpoint}}
    if customer is not None:
        raw["customer_id"] = customer
    if key is not None:
        key_id = explain_key_id(key)
        if key_id is None:  # not echoed: it may be the whole key, secret included
            raise _usage(console, f"--key: {KEY_ID_PROBLEM}")
        raw["key_id"] = key_id
    if principal is not None:
        raw["principal"] = _json_arg(console, "--principal", principal)
    if body is not None:
        if not body.is_file():
            raise _usage(console, f"--body: {body}: no such file")
        try:  # JSON as the proxy reads it (not YAML: a body is never YAML)
            parsed = json.loads(body.read_bytes())
        except ValueError as exc:
            raise _usage(console, f"--body: not JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise _usage(console, "--body: a request body is a JSON object")
        model = model or (parsed.get("model") if isinstance(parsed.get("model"), str) else None)
        raw["request"]["body"] = {k: v for k, v in parsed.items() if k != "model"}
    if model is None:
        raise _usage(console, "--model is required (or a --body naming its model)")
    raw["request"]["model"] = model
    if capability:
        raw["request"]["capabilities"] = list(capability)
    if origin is not None:
        raw["request"]["origin"] = origin
    if client_ip is not None:
        raw["client_ip"] = client_ip
    if at is not None:
        raw["at"] = at
    try:
        data = ExplainIn.model_validate(raw)
    except ValidationError as exc:
        raise _usage(console, "; ".join(_problem(e) for e in exc.errors())) from None
    if directory is None:
        from gateway.settings import Settings

        directory = Settings(demo=True).policy_dir
    loaded = _load(console, directory, show_ok=False) if not as_json else _quiet_load(directory)
    assert loaded.bundle is not None and loaded.version is not None
    bundle = compile_bundle(loaded.bundle, loaded.version)
    problems = input_problems(data, bundle)
    if problems:
        raise _usage(console, "; ".join(problems))
    when = data.at or datetime.now(UTC)
    keys: tuple[ScopedKey, ...] = ()
    through: KeyRecord | None = None
    if data.key_id is not None:
        through = read_key(console, data.key_id)
        who = through.principal
    elif customer is not None:
        record = read_customer(console, customer, when)
        who, keys = record.principal, record.keys
    else:
        assert data.principal is not None  # ExplainIn requires one of the two
        who = data.principal.principal()
    if data.client_ip is not None:
        place = _locate(data.client_ip)
    else:
        place = origin_of(data.request.origin)
    result = run_explain(who, data.request, place, bundle, when, rule_locations(directory))
    if isinstance(result, str):
        raise _usage(console, result)
    doc = document(result, bundle, keys, through)
    counted_for = None if data.principal is not None else who.customer_id
    doc["quota"] = with_usage(doc["quota"], *read_quota_usage(counted_for, result.quota))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        print_explanation(console, result, doc)
    if doc["decision"] != "allow":  # a key refused before policy too (401)
        raise typer.Exit(1)


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {pydantic_message(err)}" if where else pydantic_message(err)


def _quiet_load(directory: Path) -> LoadResult:
    # --json prints the document alone; an invalid bundle still exits as validate does.
    from gateway.cli.policy import _load

    return _load(Console(stderr=True, highlight=False, soft_wrap=True), directory, show_ok=False)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain_cmd)
