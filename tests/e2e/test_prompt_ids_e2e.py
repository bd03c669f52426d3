"""Stored prompts (Responses ``prompt.id``) run only when the operator shares them.

Prompts are made in the provider's dashboard, under the gateway's one
account, never through an API the gateway relays: no customer can own one.
With ``GATEWAY_SHARED_PROMPT_IDS`` set, any other prompt id is refused as an
unknown file id is (404, recorded, never forwarded); unset, prompt ids are
forwarded as before. Either way the decision record names the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.e2e.test_reference_binding_e2e import (
    Log,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

SHARED = "pmpt_operator_faq"


def _run(client: openai.OpenAI, prompt: dict[str, Any]) -> Any:
    return client.responses.with_raw_response.create(model="haiku-lite", prompt=prompt,  # type: ignore[arg-type]
                                                     input="hi")


def _facts(admin: Admin, answer: Any) -> dict[str, Any]:
    decision_id = answer.headers["x-gateway-decision-id"]
    facts: dict[str, Any] = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()["facts"]
    return facts


def test_only_shared_prompts_run_when_the_operator_lists_them(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_PROMPT_IDS": f"{SHARED}, pmpt_other_faq"})
    admin = Admin(gateway.url)
    client = openai_client(gateway, two_customers(admin)[0])

    answer = _run(client, {"id": SHARED, "version": "3"})
    assert answer.parse().status == "completed"
    assert _facts(admin, answer)["stored_prompt"] == {"id": SHARED, "version": "3"}
    for prompt in ({"id": "pmpt_someone_elses"}, {"id": "pmpt_someone_elses", "version": "1",
                                                 "variables": {"x": "y"}}):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            _run(client, prompt)
        assert refused.value.body["code"] == "prompt-not-found", refused.value.body  # type: ignore[index]
        assert "pmpt_someone_elses" in refused.value.body["message"], refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before, "prompt-not-found")
        decision_id = refused.value.response.headers["x-gateway-decision-id"]
        record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
        assert record["facts"]["stored_prompt"]["id"] == "pmpt_someone_elses", record


def test_unlisted_prompts_run_as_before_and_are_recorded(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    client = openai_client(gateway, two_customers(admin)[0])
    before = len(standin_log())
    answer = _run(client, {"id": "pmpt_any", "version": "2"})
    assert answer.parse().status == "completed"
    assert len(standin_log()) == before + 1  # forwarded
    assert _facts(admin, answer)["stored_prompt"] == {"id": "pmpt_any", "version": "2"}
    plain = client.responses.with_raw_response.create(model="haiku-lite", input="hi")
    assert "stored_prompt" not in _facts(admin, plain)
