"""The upstream is not told where the client says it is.

The gateway decides on the client address it resolved itself (the peer, or
``X-Forwarded-For`` only from a trusted proxy). Relayed verbatim, the client's
own ``X-Forwarded-For`` (and ``Forwarded``, ``X-Real-IP``, ``True-Client-IP``,
``CF-Connecting-IP``...) told the model provider any address the client
liked, one the gateway may have decided against: the provider's abuse and
export screening then saw an address the gateway never checked. They are
dropped; ``GATEWAY_UPSTREAM_FORWARDED_FOR`` sends the resolved address instead.
"""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import openai
import pytest

from tests.e2e.conftest import US_ENTERPRISE, US_IP, GatewayFactory
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e
StandinLog = Callable[[], list[dict[str, object]]]

# What a client claims; through the trusted loopback proxy the gateway takes
# the right-most address, US_IP, and locates the request there.
CLAIMS = {
    "x-forwarded-for": f"198.51.100.23, {US_IP}",
    "forwarded": "for=198.51.100.23;proto=https;host=elsewhere.example",
    "x-real-ip": "198.51.100.23",
    "x-forwarded-host": "elsewhere.example",
    "x-forwarded-proto": "https",
    "x-forwarded-port": "8443",
    "true-client-ip": "198.51.100.23",
    "cf-connecting-ip": "198.51.100.23",
    "x-client-ip": "198.51.100.23",
    "x_real_ip": "198.51.100.23",  # read as X-Real-IP by CGI-style servers
    "x-request-tag": "kept",
}


def _forwarded(standin_log: StandinLog) -> dict[str, str]:
    headers: dict[str, str] = standin_log()[-1]["headers"]  # type: ignore[assignment]
    return headers


def test_the_clients_forwarding_headers_are_not_relayed(
    gateway: Proc, enterprise_key: str, standin_log: StandinLog
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=enterprise_key,
                           default_headers=CLAIMS, max_retries=0)  # fmt: skip
    answer = client.chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    forwarded = _forwarded(standin_log)
    assert forwarded["x-request-tag"] == "kept", forwarded  # other headers still go
    relayed = {name for name in CLAIMS if name != "x-request-tag"} & set(forwarded)
    assert not relayed, {name: forwarded[name] for name in relayed}


def test_an_operator_may_send_the_resolved_address_upstream(
    gateway_factory: GatewayFactory, standin_log: StandinLog
) -> None:
    gateway = gateway_factory({"GATEWAY_UPSTREAM_FORWARDED_FOR": "true"})
    key = Admin(gateway.url).customer_with_key(**US_ENTERPRISE)
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, default_headers=CLAIMS,
                                 max_retries=0)  # fmt: skip
    answer = client.messages.create(
        model="haiku-lite", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.content
    forwarded = _forwarded(standin_log)
    # Exactly the address the gateway decided on, not the client's chain.
    assert forwarded.get("x-forwarded-for") == US_IP, forwarded
    assert "x-real-ip" not in forwarded and "forwarded" not in forwarded, forwarded


# Other spellings of the same claim that proxies, CDNs and frameworks read:
# the list above named some, and the rest went upstream as the client wrote them.
MORE_CLAIMS = {
    "x-forwarded": "for=198.51.100.23",
    "x-forwarded-scheme": "https",
    "x-forwarded-prefix": "/elsewhere",
    "x-forwarded-client-cert": "Hash=abc;Subject=\"CN=elsewhere\"",
    "x-originating-ip": "198.51.100.23",
    "x-remote-ip": "198.51.100.23",
    "x-remote-addr": "198.51.100.23",
    "client-ip": "198.51.100.23",
    "x-real-client-ip": "198.51.100.23",
    "x-envoy-external-address": "198.51.100.23",
    "fly-client-ip": "198.51.100.23",
    "cf-connecting-ipv6": "2001:db8::23",
    "X-Forwarded-Ssl": "on",  # any case: header names are case-insensitive
    "x_forwarded_uri": "/elsewhere",  # read as X-Forwarded-Uri by CGI-style servers
    "x-request-tag": "kept",
}


def test_other_spellings_of_the_clients_address_are_not_relayed(
    gateway: Proc, enterprise_key: str, standin_log: StandinLog
) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=enterprise_key,
                           default_headers=MORE_CLAIMS, max_retries=0)  # fmt: skip
    answer = client.chat.completions.create(
        model="haiku-lite", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    forwarded = _forwarded(standin_log)
    assert forwarded["x-request-tag"] == "kept", forwarded
    claimed = {name.lower() for name in MORE_CLAIMS if name != "x-request-tag"}
    relayed = claimed & set(forwarded)
    assert not relayed, {name: forwarded[name] for name in relayed}
