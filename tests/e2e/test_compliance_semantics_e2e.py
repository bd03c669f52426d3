"""Red team of what the gateway decides against what an officer believes it
decides (session 16), through the real server and the official SDKs."""

# ruff: noqa: RUF001, RUF003  (look-alike letters on purpose)
from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import US_IP, GatewayFactory
from tests.support.processes import REPO, Admin, Proc

pytestmark = pytest.mark.e2e
SANCTIONS_CSV = REPO / "tests" / "data" / "sanctions_sample.csv"
# "Velmora Precision Components" (a Denied Persons List entry of the sample)
# typed with Cyrillic Р р е с і ѕ о С: the same on screen.
DISGUISED = "Vеlmоrа Рrесіѕіоn Соmроnеntѕ"
DIRECTIVE = "directive-frontier-us-persons-only"


def client(gateway: Proc, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                         default_headers={"x-forwarded-for": US_IP})  # fmt: skip


def ask(gateway: Proc, key: str, model: str) -> None:
    client(gateway, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )


def test_a_listed_name_typed_with_look_alike_letters_is_held(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(env={"GATEWAY_SANCTIONS_LIST": str(SANCTIONS_CSV)})
    admin = Admin(gateway.url)
    created = admin.customer(name=DISGUISED, kind="organization", kyc_level="kyb_verified",
                             tier="enterprise")  # fmt: skip
    assert created["sanctions_status"] == "potential_match", created
    # A rename into the disguise is screened the same way.
    clean = admin.customer(name="Teodor Marchetti")
    assert clean["sanctions_status"] == "clear", clean
    renamed = admin.http.patch(f"/admin/v1/customers/{clean['id']}", json={"name": DISGUISED})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["sanctions_status"] == "potential_match", renamed.text


@pytest.mark.parametrize(
    "as_if_a_person",
    [{"citizenships": ["US"]}, {"attributes": ["us_permanent_resident"]}],
    ids=["us-citizenship", "permanent-resident-attribute"],
)
def test_an_organization_is_never_a_us_person(
    gateway_factory: GatewayFactory, as_if_a_person: dict[str, list[str]]
) -> None:
    """docs/policy.md: "an organization's key is never a US person, because the
    people behind it may be foreign nationals". An organization whose record
    carried a US citizenship (a KYB form's "nationality") or a person's
    attribute was one, and its foreign-national staff got the directive's
    frontier models."""
    gateway = gateway_factory()
    admin = Admin(gateway.url)
    key = admin.customer_with_key(
        name="Harbor Analytics Pte", kind="organization", residence="SG", incorporated_in="SG",
        ownership=[{"country": "SG", "percent": 100}], kyc_level="kyb_verified",
        tier="enterprise", **as_if_a_person,
    )  # fmt: skip
    ask(gateway, key, "haiku-lite")  # served: the tier's other models are untouched
    with pytest.raises(openai.PermissionDeniedError) as refused:
        ask(gateway, key, "fable-5")
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == DIRECTIVE, body
    decision_id = refused.value.response.headers["x-gateway-decision-id"]
    record = admin.http.get(f"/admin/v1/decisions/{decision_id}").json()
    assert record["decision"] == "deny" and record["rule_ids"] == [DIRECTIVE], record
    # An individual with the same record stays a US person.
    person = admin.customer_with_key(
        name="Dana Person", kind="individual", residence="SG", kyc_level="kyb_verified",
        tier="enterprise", **as_if_a_person,
    )  # fmt: skip
    ask(gateway, person, "fable-5")


def test_a_trusted_proxys_ipv6_hop_with_a_zone_id_is_located(
    gateway_factory: GatewayFactory,
) -> None:
    """Iran's 2a00:4000::1 with a zone id was an unknown origin, served."""
    gateway = gateway_factory()
    admin = Admin(gateway.url)
    key = admin.customer_with_key(
        name="Zone Test", kind="individual", citizenships=["US"], residence="US",
        kyc_level="email_verified", tier="public",
    )  # fmt: skip
    for hop in ("2a00:4000::1%eth0", "[2a00:4000::1%25eth0]:443"):
        sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0,
                            default_headers={"x-forwarded-for": hop})  # fmt: skip
        with pytest.raises(openai.PermissionDeniedError) as refused:
            sdk.chat.completions.create(
                model="haiku-lite", messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
        body = refused.value.body
        assert isinstance(body, dict) and body["code"] == "sanctioned-origin", (hop, body)
        record = admin.http.get(
            f"/admin/v1/decisions/{refused.value.response.headers['x-gateway-decision-id']}"
        ).json()
        assert record["origin_country"] == "IR" and record["client_ip"] == "2a00:4000::1", record
