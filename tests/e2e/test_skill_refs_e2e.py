"""Custom skills are the operator's: named only when shared.

A custom skill (Anthropic ``container.skills`` of type ``custom``, a Responses
shell ``environment``'s ``skill_reference``) lives in the gateway's one
upstream account, uploaded by the operator, perhaps for one customer:
customers cannot upload any (``/v1/skills`` is not served). Only the ids in
``GATEWAY_SHARED_SKILL_IDS`` may be named; any other is 404 as an unknown id,
recorded, never forwarded. Anthropic's own skills (``pptx``...) pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.test_reference_binding_e2e import (
    ANTHROPIC_CODE,
    Log,
    anthropic_client,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

SKILL_RULE = "skill-not-found"
SHARED_SKILL = "skill_01OperatorHouseStyle"
OTHER_SKILL = "skill_01MadeForAnotherCustomer"
BETAS: Any = ["code-execution-2025-08-25", "skills-2025-10-02"]


def _custom(skill_id: str) -> dict[str, Any]:
    return {"type": "custom", "skill_id": skill_id, "version": "latest"}


def _anthropic_skills(client: anthropic.Anthropic, *skills: dict[str, Any],
                      stream: bool = False) -> Any:
    params: Any = {
        "model": "haiku-lite", "max_tokens": 64, "betas": BETAS, "tools": ANTHROPIC_CODE,
        "messages": [{"role": "user", "content": "make the deck"}],
        "container": {"skills": list(skills)},
    }
    if stream:
        with client.beta.messages.stream(**params) as events:
            return events.get_final_message()
    return client.beta.messages.create(**params)


def _shell_skills(client: openai.OpenAI, *skill_ids: str) -> Any:
    skills = [{"type": "skill_reference", "skill_id": s} for s in skill_ids]
    tools: Any = [{"type": "shell", "environment": {"type": "container_auto",
                                                    "skills": skills}}]
    return client.responses.create(model="haiku-lite", input="use the skill", tools=tools)


def test_custom_skills_are_named_only_when_the_operator_shares_them(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_SKILL_IDS": f"{SHARED_SKILL}, skill_x"})
    admin = Admin(gateway.url)
    key = two_customers(admin)[0]
    client = anthropic_client(gateway, key)
    pptx = {"type": "anthropic", "skill_id": "pptx", "version": "latest"}

    # Anthropic's own skills and shared custom ones are forwarded.
    before = len(standin_log())
    assert _anthropic_skills(client, pptx).content
    assert _anthropic_skills(client, pptx, _custom(SHARED_SKILL), stream=True).content
    assert len(standin_log()) == before + 2

    for skills, stream in (((_custom(OTHER_SKILL),), False),
                           ((pptx, _custom(SHARED_SKILL), _custom(OTHER_SKILL)), True)):
        before = len(standin_log())
        with pytest.raises(anthropic.NotFoundError) as refused:
            _anthropic_skills(client, *skills, stream=stream)
        body: Any = refused.value.body
        assert body["error"]["type"] == "not_found_error", body
        assert OTHER_SKILL in body["error"]["message"], body
        assert_not_found_unforwarded(refused.value, admin, standin_log, before, SKILL_RULE)


def test_responses_shell_skill_references_are_named_only_when_shared(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_SKILL_IDS": SHARED_SKILL})
    admin = Admin(gateway.url)
    client = openai_client(gateway, two_customers(admin)[0])

    assert _shell_skills(client, SHARED_SKILL).status == "completed"
    for skill_ids in ((OTHER_SKILL,), (SHARED_SKILL, OTHER_SKILL)):
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            _shell_skills(client, *skill_ids)
        assert refused.value.body["code"] == SKILL_RULE, refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before, SKILL_RULE)


def test_a_message_batch_naming_an_unshared_custom_skill_is_refused_whole(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SHARED_SKILL_IDS": SHARED_SKILL})
    admin = Admin(gateway.url)
    client = anthropic_client(gateway, two_customers(admin)[0])

    def one(custom_id: str, skill_id: str) -> Any:
        return {"custom_id": custom_id, "params": {
            "model": "haiku-lite", "max_tokens": 16, "tools": ANTHROPIC_CODE,
            "messages": [{"role": "user", "content": "hi"}],
            "container": {"skills": [_custom(skill_id)]}}}

    assert client.messages.batches.create(requests=[one("a", SHARED_SKILL)]).id
    before = len(standin_log())
    with pytest.raises(anthropic.NotFoundError) as refused:
        client.messages.batches.create(requests=[one("a", SHARED_SKILL), one("b", OTHER_SKILL)])
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, SKILL_RULE)
