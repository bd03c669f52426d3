"""Calls on a stored Responses answer by id: retrieve, delete, cancel, input items.

Background mode (``background: true``) answers ``queued`` and the client polls
``GET /v1/responses/{id}`` until the response is done. Each of these calls
hands over model output, so each is a decision like any request: recorded
before it is forwarded, refused by the policy that would refuse the model
now, and refused (404, never forwarded) to anyone but the customer the
response was relayed to.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import PUBLIC_PERSON, US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
StandinLog = Callable[[], list[dict[str, object]]]


def client(gateway: Proc, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP, **headers})


def record(admin: Admin, decision_id: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    return found


def outcome_of(admin: Admin, decision_id: str) -> dict[str, Any]:
    """The outcome record, linked to its decision once the next batch commits."""
    deadline = time.monotonic() + 5
    while not (outcomes := record(admin, decision_id).get("outcomes")):
        assert time.monotonic() < deadline, "no outcome recorded"
        time.sleep(0.1)
    found: dict[str, Any] = outcomes[0]
    return found


def refused_within(seconds: float, call: Callable[[], object]) -> None:
    """Wait for ``call`` to be refused 403 (a suspension or a policy edit
    reaches the gateway within a second or two, not at once)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            call()
        except openai.PermissionDeniedError:
            return
        assert time.monotonic() < deadline, "still served"
        time.sleep(0.1)


def poll(owner: openai.OpenAI, response_id: str) -> Any:
    """Retrieve until the response is done, as a background client does."""
    deadline = time.monotonic() + 10
    while True:
        got = owner.responses.retrieve(response_id)
        if got.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_background_response_is_polled_to_completion_by_its_owner(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    queued = owner.responses.create(model="haiku-lite", input="plan the survey", background=True)
    assert queued.status == "queued" and queued.usage is None

    done = poll(owner, queued.id)
    assert done.status == "completed" and done.output_text == "Hello from the stand-in model."

    raw = owner.responses.with_raw_response.retrieve(queued.id)
    decision = record(admin, raw.headers["x-gateway-decision-id"])
    assert (decision["decision"], decision["status"]) == ("allow", 200), decision
    assert decision["endpoint"] == "/v1/responses/{id}" and decision["model"] == "haiku-lite"
    assert decision["facts"]["stored_response"] == {"id": queued.id, "operation": "retrieve"}
    assert decision["facts"]["request"]["endpoint"] == "/v1/responses"  # decided as the create
    outcome = outcome_of(admin, raw.headers["x-gateway-decision-id"])
    assert outcome["upstream_status"] == 200, outcome
    # Its usage was charged at the create: not counted again per retrieval.
    assert outcome["tokens_in"] is None and outcome["tokens_out"] is None, outcome

    # Its input, and its events streamed again after the third.
    items = owner.responses.input_items.list(queued.id)
    assert [item.type for item in items.data] == ["message"]
    events = list(owner.responses.retrieve(queued.id, stream=True, starting_after=2))
    assert events[0].sequence_number == 3 and events[-1].type == "response.completed"

    # Cancel passes through; delete removes it, here and upstream.
    slow = client(gateway, owner.api_key, **{"x-standin-background-ms": "60000"})
    pending = slow.responses.create(model="haiku-lite", input="a long one", background=True)
    assert owner.responses.cancel(pending.id).status == "cancelled"
    owner.responses.delete(queued.id)
    seen_before = len(standin_log())
    with pytest.raises(openai.NotFoundError) as gone:
        owner.responses.retrieve(queued.id)
    assert gone.value.body["code"] == "stored-response-not-found", gone.value.body  # type: ignore[index]
    assert len(standin_log()) == seen_before  # refused at the gateway, not upstream


def test_a_strangers_calls_on_a_response_are_404_and_never_forwarded(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    stranger = client(gateway, admin.customer_with_key(**PUBLIC_PERSON))
    mine = owner.responses.create(model="haiku-lite", input="secret plans", background=True)

    calls: list[Callable[[str], object]] = [
        stranger.responses.retrieve,
        lambda rid: stranger.responses.retrieve(rid, stream=True),
        stranger.responses.delete,
        stranger.responses.cancel,
        stranger.responses.input_items.list,
    ]
    for response_id in (mine.id, "resp_never_issued"):
        for call in calls:
            with pytest.raises(openai.NotFoundError) as refused:
                call(response_id)
            body = refused.value.body
            assert body["code"] == "stored-response-not-found", body  # type: ignore[index]
            assert body["message"] == f"Response with id '{response_id}' not found.", body  # type: ignore[index]
            found = record(admin, refused.value.response.headers["x-gateway-decision-id"])
            assert found["rule_ids"] == ["stored-response-not-found"], found
            assert (found["decision"], found["status"]) == ("deny", 404), found
            assert found["facts"]["stored_response"]["id"] == response_id, found
    paths = [str(seen["path"]) for seen in standin_log()]
    assert not [p for p in paths if p.startswith("/v1/responses/")], paths
    # The owner still has it: nothing the stranger did touched it.
    assert poll(owner, mine.id).status == "completed"


def test_a_customer_suspended_after_create_cannot_fetch_the_output(
    gateway: Proc, admin: Admin, standin_log: StandinLog
) -> None:
    customer = admin.customer(**US_ENTERPRISE)
    owner = client(gateway, admin.key(str(customer["id"])))
    queued = owner.responses.create(model="haiku-lite", input="dual-use design", background=True)
    patched = admin.http.patch(f"/admin/v1/customers/{customer['id']}",
                               json={"status": "suspended"})
    assert patched.status_code == 200, patched.text
    refused_within(5, lambda: owner.responses.retrieve(queued.id))
    seen_before = len(standin_log())
    with pytest.raises(openai.PermissionDeniedError) as refused:
        owner.responses.retrieve(queued.id)
    assert refused.value.body["code"] == "customer-suspended", refused.value.body  # type: ignore[index]
    found = record(admin, refused.value.response.headers["x-gateway-decision-id"])
    assert (found["decision"], found["rule_ids"]) == ("deny", ["customer-suspended"]), found
    assert len(standin_log()) == seen_before  # decided and recorded, never forwarded


def test_an_emergency_directive_after_create_refuses_retrieval(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    queued = owner.responses.create(model="haiku-lite", input="the design", background=True)
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: emergency-haiku-freeze\n    effect: deny\n"
        "    when: {model_in: [haiku-lite]}\n    reason: Frozen by emergency directive.\n"
    ))
    refused_within(5, lambda: owner.responses.retrieve(queued.id))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        owner.responses.retrieve(queued.id)
    assert refused.value.body["code"] == "emergency-haiku-freeze", refused.value.body  # type: ignore[index]
    for call in (owner.responses.input_items.list, owner.responses.delete):
        with pytest.raises(openai.PermissionDeniedError):
            call(queued.id)


QUOTAS = """
quotas:
  public:
    default: {requests_per_minute: 5}
  enterprise:
    default_max_tokens: 100
    default: {requests_per_minute: 600, tokens_per_minute: 1000}
  research:
    default: {requests_per_minute: 120}
  government:
    default: {requests_per_minute: 1200}
  defense:
    default: {requests_per_minute: 1200}
"""


def test_background_mode_is_charged_its_reservation_once(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """The create answers ``queued`` without usage: it keeps its whole
    reservation (max_output_tokens + input) charged. Polling shows the
    usage of the completed response, which is not charged again."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    owner = client(gateway, Admin(gateway.url).customer_with_key(**US_ENTERPRISE))

    created = owner.responses.with_raw_response.create(
        model="haiku-lite", input="go", background=True, max_output_tokens=300)
    after_create = int(created.headers["x-ratelimit-remaining-tokens"])
    assert after_create <= 1000 - 300, created.headers
    requests_left = int(created.headers["x-ratelimit-remaining-requests"])
    for poll_number in range(5):
        if poll_number == 2:
            time.sleep(0.5)  # completed from here: the answers show its usage
        polled = owner.responses.with_raw_response.retrieve(created.parse().id)
        requests_left -= 1  # each retrieval is a request
        assert int(polled.headers["x-ratelimit-remaining-requests"]) == requests_left
        # ... and no tokens: each retrieval's admission sees the one before settled.
        assert int(polled.headers["x-ratelimit-remaining-tokens"]) == after_create, poll_number
    assert polled.parse().usage is not None
    # A foreground call shows the create was never settled down to its usage
    # (12 tokens) and the retrievals charged nothing: 1000 - reservation - this one.
    more = owner.responses.with_raw_response.create(model="haiku-lite", input="go",
                                                    max_output_tokens=300)
    assert int(more.headers["x-ratelimit-remaining-tokens"]) <= after_create - 300


def test_background_usage_beyond_its_charge_is_charged_once_when_retrieved(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """The reservation covers the output bound and the new input, not the
    context a ``previous_response_id`` pulls in upstream: a response that
    used more is charged the rest by the first retrieval showing its usage,
    and only once however often it is polled."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS.replace("1000", "5000"))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    owner = client(gateway, Admin(gateway.url).customer_with_key(**US_ENTERPRISE),
                   **{"x-standin-output-tokens": "1995", "x-standin-background-ms": "0"})
    created = owner.responses.with_raw_response.create(
        model="haiku-lite", input="go", background=True, max_output_tokens=300)
    after_create = int(created.headers["x-ratelimit-remaining-tokens"])
    response_id = created.parse().id
    reserved = 5000 - after_create
    first = owner.responses.with_raw_response.retrieve(response_id)
    assert first.parse().usage.total_tokens == 2000  # type: ignore[union-attr]
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == after_create
    # Settled after the answer went out: the next call may be admitted first.
    deadline = time.monotonic() + 3
    while True:
        again = owner.responses.with_raw_response.retrieve(response_id)
        remaining = int(again.headers["x-ratelimit-remaining-tokens"])
        if remaining != after_create or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert remaining == 5000 - 2000, (remaining, reserved)  # the 1699 beyond it, once
    time.sleep(0.3)
    for _ in range(3):
        again = owner.responses.with_raw_response.retrieve(response_id)
        assert int(again.headers["x-ratelimit-remaining-tokens"]) == 5000 - 2000


def test_a_stream_parameter_the_upstream_could_read_otherwise_is_refused(
    gateway_factory: GatewayFactory, tmp_path: Path, standin_log: StandinLog
) -> None:
    """The gateway decides, admits and relays a retrieval as a stream or not by
    ``?stream=``; the upstream reads the query itself. Given twice (``false``
    then ``true``) or spelt ``TRUE``, the stand-in answered JSON while the
    gateway relayed a stream whose usage it never saw: the background
    response's usage beyond its charge was never charged, however often it
    was retrieved so. Only one ``stream``, ``true`` or ``false``, is accepted."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS.replace("1000", "5000"))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    owner = client(gateway, key, **{"x-standin-output-tokens": "1995",
                                    "x-standin-background-ms": "0"})
    response_id = owner.responses.create(model="haiku-lite", input="go", background=True,
                                         max_output_tokens=300).id
    time.sleep(0.1)
    seen_before = len(standin_log())
    headers = {"authorization": f"Bearer {key}", "x-forwarded-for": US_IP}
    for query in ("stream=false&stream=true", "stream=TRUE", "stream=1", "Stream=true"):
        answer = httpx.get(f"{gateway.url}/v1/responses/{response_id}?{query}", headers=headers)
        assert answer.status_code == 400, (query, answer.status_code, answer.text[:200])
        assert answer.json()["error"]["param"] == "stream", answer.text
    assert len(standin_log()) == seen_before  # refused at the gateway
    # The SDK's own spelling is served, and the stream's usage settles the rest.
    events = list(owner.responses.retrieve(response_id, stream=True))
    assert events[-1].type == "response.completed"
    again = owner.responses.with_raw_response.retrieve(response_id)
    deadline = time.monotonic() + 3
    while int(again.headers["x-ratelimit-remaining-tokens"]) != 3000:
        assert time.monotonic() < deadline, again.headers["x-ratelimit-remaining-tokens"]
        time.sleep(0.1)
        again = owner.responses.with_raw_response.retrieve(response_id)


def test_anthropic_clients_are_unaffected(gateway: Proc, admin: Admin) -> None:
    key = admin.customer_with_key(**US_ENTERPRISE)
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0,
                                 default_headers={"x-forwarded-for": US_IP})
    answer = claude.messages.create(model="haiku-lite", max_tokens=50,
                                    messages=[{"role": "user", "content": "hi"}])
    assert answer.content[0].type == "text"
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("haiku-lite")  # a route not served, in Anthropic's shape


def test_a_background_stream_cut_after_its_first_event_is_charged_what_it_used(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """A background create that streams goes on upstream when its client hangs
    up: the client retrieves the whole response afterwards. Cut after
    ``response.created``, the create is charged its reservation; the first
    retrieval showing the usage charges the rest, as for a ``queued`` create,
    or hanging up at once would be a way to pay the reservation only."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    (bundle / "quotas.yaml").write_text(QUOTAS.replace("1000", "5000"))
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    owner = client(gateway, Admin(gateway.url).customer_with_key(**US_ENTERPRISE),
                   **{"x-standin-output-tokens": "1995", "x-standin-background-ms": "0",
                      "x-standin-interval-ms": "300"})
    with owner.responses.create(model="haiku-lite", input="go", background=True,
                                max_output_tokens=300, stream=True) as stream:
        response_id = next(iter(stream)).response.id  # type: ignore[union-attr]
    # The cut create is settled at its reservation; the retrievals then show
    # the 2000 tokens the response used, charged once.
    deadline = time.monotonic() + 5
    while True:
        again = owner.responses.with_raw_response.retrieve(response_id)
        remaining = int(again.headers["x-ratelimit-remaining-tokens"])
        if remaining == 5000 - 2000 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert again.parse().usage.total_tokens == 2000  # type: ignore[union-attr]
    assert remaining == 5000 - 2000, remaining
    time.sleep(0.3)
    for _ in range(3):
        again = owner.responses.with_raw_response.retrieve(response_id)
        assert int(again.headers["x-ratelimit-remaining-tokens"]) == 5000 - 2000


def test_two_customers_sending_the_same_request_each_keep_their_own_response(
    gateway: Proc, admin: Admin
) -> None:
    """The stand-in, like the real API, answers every create with a new id:
    it derived the id from the request, so the second of two customers
    sending the same create got the first one's id, whose binding is the
    first customer's, and could not retrieve its own answer."""
    first = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    second = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    a = first.responses.create(model="haiku-lite", input="the same words", background=True)
    b = second.responses.create(model="haiku-lite", input="the same words", background=True)
    assert a.id != b.id
    assert poll(first, a.id).status == "completed"
    assert poll(second, b.id).status == "completed"


def test_a_directive_on_a_capability_the_create_carried_refuses_retrieval(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    """A call by id is decided with the capabilities its create was decided
    with: a directive refusing one of them stops the output being fetched."""
    bundle = tmp_path / "bundle"
    shutil.copytree(REPO / "policies", bundle)
    gateway = gateway_factory(env={"GATEWAY_POLICY_DIR": str(bundle)})
    admin = Admin(gateway.url)
    owner = client(gateway, admin.customer_with_key(**US_ENTERPRISE))
    coded = owner.responses.create(model="haiku-lite", input="def f(x): pass", background=True)
    plain = owner.responses.create(model="haiku-lite", input="the weather", background=True)
    rules = bundle / "rules.yaml"
    rules.write_text(rules.read_text() + (
        "\n  - id: emergency-coding-freeze\n    effect: deny\n"
        "    when: {capability_in: [coding]}\n    reason: Frozen by emergency directive.\n"
    ))
    refused_within(5, lambda: owner.responses.retrieve(coded.id))
    with pytest.raises(openai.PermissionDeniedError) as refused:
        owner.responses.retrieve(coded.id)
    assert refused.value.body["code"] == "emergency-coding-freeze", refused.value.body  # type: ignore[index]
    found = record(admin, refused.value.response.headers["x-gateway-decision-id"])
    assert (found["decision"], found["rule_ids"]) == ("deny", ["emergency-coding-freeze"]), found
    for call in (owner.responses.input_items.list, owner.responses.cancel):
        with pytest.raises(openai.PermissionDeniedError):
            call(coded.id)
    assert poll(owner, plain.id).status == "completed"  # no coding in it: still served
