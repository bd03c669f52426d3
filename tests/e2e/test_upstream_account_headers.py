"""A client cannot choose which of the operator's upstream accounts serves it.

The upstream credential is the gateway's (``GATEWAY_UPSTREAM_API_KEY``), and
``OpenAI-Organization`` / ``OpenAI-Project`` select which organization or
project of that credential a request runs, and is billed, under: its rate
limits, its budget, its data controls (retention, residency). Forwarded as the
client sent them, any customer could run its requests under another project
of the operator's (and a client whose SDK sets ``OPENAI_ORG_ID`` for its own
OpenAI account had its calls refused upstream as a mismatched organization).
The gateway already drops the platform's account headers from answers.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.e2e.conftest import US_IP
from tests.support.processes import Proc

pytestmark = pytest.mark.e2e
StandinLog = Callable[[], list[dict[str, object]]]


def test_the_client_cannot_pick_the_upstream_organization_or_project(
    gateway: Proc, enterprise_key: str, standin_log: StandinLog
) -> None:
    client = openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=enterprise_key, max_retries=0,
        organization="org-someone-elses", project="proj-someone-elses",
        default_headers={"x-forwarded-for": US_IP},
    )  # fmt: skip
    answer = client.chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    forwarded: dict[str, str] = standin_log()[-1]["headers"]  # type: ignore[assignment]
    assert "openai-organization" not in forwarded, forwarded
    assert "openai-project" not in forwarded, forwarded


def test_an_underscore_spelling_of_a_gateway_header_is_not_forwarded(
    gateway: Proc, enterprise_key: str, standin_log: StandinLog
) -> None:
    """``x_gateway_customer`` is another header to the gateway, but servers that
    map header names into a CGI/WSGI environment (``HTTP_X_GATEWAY_CUSTOMER``)
    read it as the ``x-gateway-customer`` the gateway sets, and may take the
    client's value; nginx drops such headers by default for that reason. The
    same goes for the credentials the gateway strips (``x_api_key``)."""
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "haiku-lite", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {enterprise_key}", "x-forwarded-for": US_IP,
                 "x_gateway_customer": "someone-else", "X_Gateway_Tier": "defense",
                 "x_api_key": "gk_client_secret", "x-request-tag": "kept"},
        timeout=10,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    forwarded: dict[str, str] = standin_log()[-1]["headers"]  # type: ignore[assignment]
    assert forwarded["x-gateway-tier"] == "enterprise" and forwarded["x-request-tag"] == "kept"
    spelled = {name.replace("_", "-") for name in forwarded if "_" in name}
    assert not spelled & {"x-gateway-customer", "x-gateway-tier", "x-api-key"}, forwarded
