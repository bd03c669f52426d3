"""The emergency-directive drill, end to end: a directive against the citizens
of one country (and requests from it), written as a rule with a future
``effective.from``, checked with the CLI, shipped to a running gateway, and
audited from the decision log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e

ZA_IP = "41.0.0.1"  # South Africa in the offline RIR data
GOV = {"kind": "individual", "kyc_level": "government_cleared", "tier": "government"}


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: this checkout's code, whichever checkout the venv installed.
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
           "PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(REPO)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "gateway.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=60)  # fmt: skip


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def directive(start: datetime) -> str:
    return f"""
  - id: directive-za-frontier
    effect: deny
    when:
      model_in: [fable-5, mythos-5]
      any: [{{citizenship_in: [ZA]}}, {{origin_in: [ZA]}}]
    effective: {{from: "{rfc3339(start)}"}}
    reason: Frontier models are suspended for this jurisdiction by government order.
"""


def chat(gateway_url: str, key: str, ip: str, model: str = "fable-5") -> httpx.Response:
    return httpx.post(
        f"{gateway_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}", "x-forwarded-for": ip},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        timeout=30,
    )


def test_impact_of_a_directive_taking_effect_later_names_it_and_counts_customers(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    dual = admin.customer_with_key(
        id="za-us-dual", name="Naledi Smith", citizenships=["ZA", "US"], residence="US", **GOV
    )
    us = admin.customer_with_key(
        id="us-only", name="John Doe", citizenships=["US"], residence="US", **GOV
    )
    for _ in range(3):
        assert chat(gateway.url, dual, US_IP).status_code == 200
    assert chat(gateway.url, us, ZA_IP).status_code == 200  # a US citizen travelling in ZA
    assert chat(gateway.url, us, US_IP).status_code == 200

    start = datetime.now(UTC) + timedelta(hours=4)
    candidate = tmp_path / "candidate"
    shutil.copytree(live, candidate)
    with (candidate / "rules.yaml").open("a") as rules:
        rules.write(directive(start))

    checked = cli(tmp_path, "policy", "validate", str(candidate))
    assert checked.returncode == 0, checked.stdout
    # The instant as the gateway reads it (UTC), and where it stands now.
    assert f"timed: directive-za-frontier from {rfc3339(start)} (pending now)" in checked.stdout

    # The officer's question: whom will it cut? The recorded decisions all
    # predate the directive, so replayed at their own times it decides none of
    # them; the report must say so and how to ask at the effective time.
    plain = cli(tmp_path, "policy", "impact", str(candidate), "--since", "7d")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "0 allow->deny" in plain.stdout, plain.stdout
    assert "directive-za-frontier takes effect" in plain.stdout, plain.stdout
    assert f"--at {rfc3339(start)}" in plain.stdout, plain.stdout

    at = cli(tmp_path, "policy", "impact", str(candidate), "--since", "7d", "--at", rfc3339(start))
    assert at.returncode == 0, at.stdout + at.stderr
    assert "4 allow->deny" in at.stdout, at.stdout
    # Requests are not customers: four flips are two customers.
    assert "2 customers would be refused" in at.stdout, at.stdout
    assert "za-us-dual" in at.stdout and "us-only" in at.stdout, at.stdout


LICENCE = """
  - id: licence-za-0042-sipho
    effect: exempt
    exempts: [directive-za-frontier]
    when: {customer_in: [za-licensed]}
    legal_basis: Licence ZA-0042 (drill), issued to the named customer only
    reason: Served under licence ZA-0042.
"""


def test_a_licensed_customer_is_exempt_and_every_request_served_under_the_licence_is_recorded(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    with (live / "rules.yaml").open("a") as rules:
        rules.write(directive(datetime.now(UTC) - timedelta(hours=1)) + LICENCE)
    checked = cli(tmp_path, "policy", "validate", str(live))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    # Both are US permanent residents (US persons), so only the new directive applies.
    person = {"citizenships": ["ZA"], "residence": "US", "attributes": ["us_permanent_resident"]}
    licensed = admin.customer_with_key(id="za-licensed", name="Sipho Dlamini", **person, **GOV)
    other = admin.customer_with_key(id="za-other", name="Thabo Nkosi", **person, **GOV)

    served = chat(gateway.url, licensed, US_IP)
    assert served.status_code == 200, served.text
    refused = chat(gateway.url, other, US_IP)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "directive-za-frontier"
    # The refused client learns nothing of the licence or who holds one.
    assert "licence" not in refused.text.lower() and "za-licensed" not in refused.text

    # The auditor: every request served under the licence, from the log alone.
    decisions = admin.http.get(
        "/admin/v1/decisions", params={"rule_id": "licence-za-0042-sipho"}
    ).json()["items"]
    assert [d["id"] for d in decisions] == [served.headers["x-gateway-decision-id"]]
    assert decisions[0]["rule_ids"] == ["tier-entitlement", "licence-za-0042-sipho"]
    assert decisions[0]["citizenships"] == ["ZA"]

    # A licence naming a rule that does not exist is refused at load, with its line.
    broken = tmp_path / "broken"
    shutil.copytree(live, broken)
    text = (
        (broken / "rules.yaml")
        .read_text()
        .replace("exempts: [directive-za-frontier]", "exempts: [directive-za-fronteir]")
    )
    (broken / "rules.yaml").write_text(text)
    bad = cli(tmp_path, "policy", "validate", str(broken))
    assert bad.returncode == 1, bad.stdout
    assert "exempts[0]: unknown rule id 'directive-za-fronteir'" in bad.stdout, bad.stdout


def _version(gateway_url: str) -> str:
    policy = Admin(gateway_url).http.get("/admin/v1/policy").json()
    return str(policy["version"])


def _timed(gateway_url: str) -> dict[str, dict[str, object]]:
    policy = Admin(gateway_url).http.get("/admin/v1/policy").json()
    return {rule["id"]: rule for rule in policy["timed_rules"]}


def _until(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_gateways_switch_at_the_effective_instant_and_back_at_until(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    env = {"GATEWAY_POLICY_DIR": str(live)}
    one, two = gateway_factory(env=env), gateway_factory(env=env)  # one database, one directory
    staff = Admin(one.url).customer_with_key(
        id="staff-za", name="Lerato Mokoena", citizenships=["ZA"], residence="US",
        attributes=["us_permanent_resident"], **GOV,
    )  # fmt: skip
    old = _version(one.url)

    # 02:00: the officer saves the directive; both gateways load it at once,
    # and it decides nothing before its effective instant.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
    rules = live / "rules.yaml"
    original = rules.read_text()
    rules.write_text(original + directive(start))
    _until(lambda: _version(one.url) != old and _version(two.url) != old)
    new = _version(one.url)
    assert _version(two.url) == new
    # The officer checks each running gateway holds it, pending until its instant.
    for gw in (one, two):
        assert _timed(gw.url)["directive-za-frontier"] == {
            "id": "directive-za-frontier", "effect": "deny", "mode": "enforce",
            "from": rfc3339(start), "until": None, "state": "pending",
        }  # fmt: skip
    for gw in (one, two):
        before = chat(gw.url, staff, US_IP)
        assert datetime.now(UTC) < start, "the machine is too slow for this test"
        assert before.status_code == 200, before.text
        assert before.headers["x-gateway-policy-version"] == new

    # 06:00: both refuse, without any reload, and say which rule.
    _until(lambda: datetime.now(UTC) >= start + timedelta(seconds=1))
    refused = {gw.url: chat(gw.url, staff, US_IP) for gw in (one, two)}
    for response in refused.values():
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "directive-za-frontier"
        assert response.headers["x-gateway-policy-version"] == new
    assert _timed(one.url)["directive-za-frontier"]["state"] == "in_force"

    # The order is withdrawn: `until` a few seconds ahead, then served again.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    rules.write_text(
        original
        + directive(start).replace(
            f'{{from: "{rfc3339(start)}"}}',
            f'{{from: "{rfc3339(start)}", until: "{rfc3339(end)}"}}',
        )
    )
    _until(lambda: _version(one.url) not in (old, new) and _version(two.url) not in (old, new))
    _until(lambda: datetime.now(UTC) >= end + timedelta(seconds=1))
    for gw in (one, two):
        assert chat(gw.url, staff, US_IP).status_code == 200
    assert _timed(two.url)["directive-za-frontier"]["state"] == "ended"

    # The auditor: from the log alone, each refusal by rule and time window,
    # with the version in force, which the two replicas agree on.
    decisions = (
        Admin(one.url)
        .http.get(
            "/admin/v1/decisions",
            params={"rule_id": "directive-za-frontier", "from": rfc3339(start), "to": rfc3339(end)},
        )
        .json()["items"]
    )
    assert sorted(d["id"] for d in decisions) == sorted(
        r.headers["x-gateway-decision-id"] for r in refused.values()
    )
    assert {d["policy_version"] for d in decisions} == {new}
    assert all(d["citizenships"] == ["ZA"] and d["status"] == 403 for d in decisions)


def test_staff_signing_in_with_oidc_are_cut_like_customers(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    from tests.support.oidc_issuer import LocalIssuer

    issuer = LocalIssuer(audience="gateway-drill")
    try:
        live = tmp_path / "live"
        shutil.copytree(REPO / "policies", live)
        with (live / "rules.yaml").open("a") as rules:
            rules.write(directive(datetime.now(UTC) - timedelta(minutes=1)))
        gateway = gateway_factory(
            env={
                "GATEWAY_POLICY_DIR": str(live),
                "GATEWAY_OIDC_ISSUER": issuer.url,
                "GATEWAY_OIDC_AUDIENCE": "gateway-drill",
            }
        )
        admin = Admin(gateway.url)
        # The provider's own employee: a KYC record under the JWT's subject.
        admin.customer(
            id="emp-lerato", name="Lerato Mokoena", citizenships=["ZA"], residence="US",
            attributes=["us_permanent_resident"], **GOV,
        )  # fmt: skip
        refused = chat(gateway.url, issuer.token("emp-lerato"), US_IP)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "directive-za-frontier"
        record = admin.http.get(
            f"/admin/v1/decisions/{refused.headers['x-gateway-decision-id']}"
        ).json()
        assert record["customer_id"] == "emp-lerato"
        assert record["rule_ids"] == ["directive-za-frontier"]
        assert record["facts"]["principal"]["auth_method"] == "oidc"
    finally:
        issuer.close()


def test_an_auditor_filter_the_api_does_not_know_is_refused_not_ignored(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory()
    admin = Admin(gateway.url)
    key = admin.customer_with_key(
        id="us-only", name="John Doe", citizenships=["US"], residence="US", **GOV
    )
    assert chat(gateway.url, key, US_IP).status_code == 200
    # `--rule` on the CLI is `rule_id` here: the mix-up used to answer (and
    # export) every decision as if it were the refusals of that rule.
    for path, extra in (
        ("/admin/v1/decisions", {}),
        ("/admin/v1/decisions/export", {"format": "jsonl"}),
    ):
        response = admin.http.get(path, params={"rule": "directive-za-frontier", **extra})
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["query", "rule"], detail
        assert "rule_id" in detail["msg"], detail
    ok = admin.http.get("/admin/v1/decisions", params={"rule_id": "tier-entitlement", "limit": 5})
    assert ok.status_code == 200 and len(ok.json()["items"]) == 1


def test_impact_on_customers_lists_those_a_directive_cuts_who_never_called(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    # Nobody calls: recorded traffic knows none of them.
    admin.customer(id="za-silent", name="Thabo Nkosi", citizenships=["ZA", "US"],
                   residence="US", **GOV)  # fmt: skip
    admin.customer(id="us-silent", name="John Doe", citizenships=["US"], residence="US", **GOV)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=4)
    with (live / "rules.yaml").open("a") as rules:
        rules.write(directive(start))

    traffic = cli(tmp_path, "policy", "impact", str(live), "--at", rfc3339(start))
    assert traffic.returncode == 0 and "0 recorded decisions" in traffic.stdout, traffic.stdout

    now = cli(tmp_path, "policy", "impact", str(live), "--customers")
    assert now.returncode == 0, now.stdout + now.stderr
    assert "0 lose a model" in now.stdout, now.stdout
    assert f"--at {rfc3339(start)}" in now.stdout, now.stdout

    at = cli(tmp_path, "policy", "impact", str(live), "--customers", "--at", rfc3339(start))
    assert at.returncode == 0, at.stdout + at.stderr
    assert "2 active customers judged" in at.stdout and "1 lose a model" in at.stdout, at.stdout
    lines = [line for line in at.stdout.splitlines() if "silent" in line]
    assert len(lines) == 2 and all("za-silent" in line for line in lines), at.stdout  # 2 models
    assert "directive-za-frontier" in lines[0], at.stdout

    # An --at without a zone cannot be compared with effective times: it used
    # to re-decide every record as an evaluation error, reported as flips.
    for mode in ((), ("--customers",)):
        naive = cli(tmp_path, "policy", "impact", str(live), *mode, "--at", "2026-06-13T06:00")
        assert naive.returncode == 2 and "time zone" in naive.stdout + naive.stderr, naive


def _stream(gateway_url: str, key: str, api: str, chunks: int = 40) -> httpx.Response:
    """A stream of ``chunks`` events, one every 250 ms (40: 10 s), read to its end."""
    path, body = (
        ("/v1/messages", {"model": "fable-5", "max_tokens": 200, "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]})
        if api == "anthropic"
        else ("/v1/chat/completions", {"model": "fable-5", "max_tokens": 200, "stream": True,
                                       "messages": [{"role": "user", "content": "hi"}]})
    )  # fmt: skip
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP,
               "x-standin-chunks": str(chunks), "x-standin-interval-ms": "250"}  # fmt: skip
    return httpx.post(f"{gateway_url}{path}", headers=headers, json=body, timeout=60)


def test_a_directive_with_in_flight_cut_ends_streams_already_running(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    import concurrent.futures

    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    staff = admin.customer_with_key(
        id="staff-za", name="Lerato Mokoena", citizenships=["ZA"], residence="US",
        attributes=["us_permanent_resident"], **GOV,
    )  # fmt: skip
    # Shipped ahead of its instant to a gateway already up (its start-up time,
    # long on a loaded machine, is then not counted against the 6 s).
    old = _version(gateway.url)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    cutting = directive(start).replace(
        "    effect: deny\n", "    effect: deny\n    in_flight: cut\n", 1
    )
    with (live / "rules.yaml").open("a") as rules:
        rules.write(cutting)
    _until(lambda: _version(gateway.url) != old, 5)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # 80 events 250 ms apart (20 s): still running at the instant, whatever
        # of the 6 s the reload took.
        streams = {
            api: pool.submit(_stream, gateway.url, staff, api, 80)
            for api in ("openai", "anthropic")
        }
        answers = {api: future.result() for api, future in streams.items()}
    for api, answer in answers.items():
        # Admitted before the directive (200), ended by it at its instant.
        assert answer.status_code == 200, answer.text
        decided = datetime.fromisoformat(
            admin.http.get(f"/admin/v1/decisions/{answer.headers['x-gateway-decision-id']}")
            .json()["ts"]
            .replace("Z", "+00:00")
        )
        assert decided < start, "the machine is too slow for this test"
        assert '"code":"directive-za-frontier"' in answer.text, (api, answer.text[-400:])
        assert answer.text.count("data:") < 80, (api, answer.text.count("data:"))
        url = f"/admin/v1/decisions/{answer.headers['x-gateway-decision-id']}"
        _until(lambda u=url: bool(admin.http.get(u).json()["outcomes"]), 30)  # after the end
        outcome = admin.http.get(url).json()["outcomes"][0]
        assert outcome["error"] == "policy_cut:directive-za-frontier", outcome


def test_a_cut_rule_shipped_late_ends_the_streams_it_now_refuses_at_the_reload(
    gateway_factory: GatewayFactory, tmp_path: Path, standin: Proc
) -> None:
    import concurrent.futures

    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    admin = Admin(gateway.url)
    staff = admin.customer_with_key(
        id="staff-za", name="Lerato Mokoena", citizenships=["ZA"], residence="US",
        attributes=["us_permanent_resident"], **GOV,
    )  # fmt: skip
    old = _version(gateway.url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = httpx.get(f"{standin.url}/_standin/streams").json()["started"]
        running = pool.submit(_stream, gateway.url, staff, "openai")
        # Admitted under the old bundle: the upstream has begun streaming it.
        _until(lambda: httpx.get(f"{standin.url}/_standin/streams").json()["started"] > started)
        late = directive(datetime.now(UTC) - timedelta(minutes=5))  # 06:00 has passed
        with (live / "rules.yaml").open("a") as rules:
            rules.write(
                late.replace("    effect: deny\n", "    effect: deny\n    in_flight: cut\n")
            )
        _until(lambda: _version(gateway.url) != old, 20)
        answer = running.result()
    assert answer.status_code == 200
    assert '"code":"directive-za-frontier"' in answer.text, answer.text[-300:]
    assert answer.text.count("data:") < 40


def test_impact_of_withdrawing_a_directive_later_names_the_instant_to_replay_at(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    shutil.copytree(REPO / "policies", live)
    start = datetime.now(UTC) - timedelta(hours=1)
    with (live / "rules.yaml").open("a") as rules:
        rules.write(directive(start))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(live)})
    dual = Admin(gateway.url).customer_with_key(
        id="za-us-dual", name="Naledi Smith", citizenships=["ZA", "US"], residence="US", **GOV
    )
    assert chat(gateway.url, dual, US_IP).status_code == 403

    # The order is withdrawn from tomorrow: `until` on the same rule.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    candidate = tmp_path / "candidate"
    shutil.copytree(live, candidate)
    text = (candidate / "rules.yaml").read_text()
    (candidate / "rules.yaml").write_text(
        text.replace(
            f'{{from: "{rfc3339(start)}"}}',
            f'{{from: "{rfc3339(start)}", until: "{rfc3339(end)}"}}',
        )
    )
    plain = cli(tmp_path, "policy", "impact", str(candidate), "--since", "1d")
    assert plain.returncode == 0 and "0 deny->allow" in plain.stdout, plain.stdout
    assert f"directive-za-frontier ends {rfc3339(end)}" in plain.stdout, plain.stdout
    at = cli(tmp_path, "policy", "impact", str(candidate), "--since", "1d", "--at", rfc3339(end))
    assert "1 deny->allow" in at.stdout and "1 admitted (deny->allow)" in at.stdout, at.stdout
