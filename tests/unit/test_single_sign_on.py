"""The pure rules of single sign-on (core/single_sign_on.py): the settings' checks, the ID token's claims beyond its
signature, the e-mail rule (the nOAuth takeover) and the grants of the provider's groups."""

from __future__ import annotations

from typing import Any

import pytest

from tokengate.core import single_sign_on as rules
from tokengate.core.errors import InvalidInput
from tokengate.core.policy import Grant

ISSUER = "https://sso.acme.example"
NOW = 1_800_000_000.0
SETTINGS = rules.Settings(
    issuer=ISSUER,
    client_id="tg",
    email_domains=("acme.example",),
    default_grants=(Grant("DEVELOPER"),),
    group_mappings=(
        rules.GroupMapping("analysts", (Grant("ANALYST"),)),
        rules.GroupMapping("p1-devs", (Grant("DEVELOPER", False, ("prj_1",)),)),
    ),
)


def claims(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "tg",
        "sub": "u1",
        "iat": NOW,
        "exp": NOW + 300,
        "nonce": "n-1",
        "email": "Ada@Acme.example",
        "email_verified": True,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def test_honest_claims_pass_and_each_check_has_its_reason():
    assert rules.claims_problem(claims(), ISSUER, "tg", "n-1", NOW) is None
    cases = {
        "wrong_issuer": claims(iss=ISSUER + "/"),
        "wrong_audience": claims(aud="other"),
        "wrong_authorized_party": claims(aud=["tg", "other"]),
        "missing_time_claims": claims(exp="soon"),
        "expired_id_token": claims(exp=NOW - rules.CLOCK_SKEW_SECONDS - 1),
        "id_token_issued_in_the_future": claims(iat=NOW + rules.CLOCK_SKEW_SECONDS + 1),
        "nonce_mismatch": claims(nonce="n-2"),
        "no_subject": claims(sub=""),
    }
    for reason, bad in cases.items():
        assert rules.claims_problem(bad, ISSUER, "tg", "n-1", NOW) == reason, reason
    assert rules.claims_problem(claims(nonce=None), ISSUER, "tg", "n-1", NOW) == "nonce_mismatch"
    assert rules.claims_problem(claims(aud=["tg", "x"], azp="tg"), ISSUER, "tg", "n-1", NOW) is None
    assert rules.claims_problem(claims(exp=True), ISSUER, "tg", "n-1", NOW) == "missing_time_claims"


def test_the_email_rule_refuses_unverified_emails_unless_the_provider_is_authoritative():
    assert rules.email_refusal(claims(), SETTINGS) is None
    assert rules.email_refusal(claims(email_verified="true"), SETTINGS) is None
    assert rules.email_refusal(claims(email_verified=False), SETTINGS) == "email_not_verified"
    assert rules.email_refusal(claims(email_verified=None), SETTINGS) == "email_not_verified"  # absent: nOAuth
    assert rules.email_refusal(claims(email_verified="yes"), SETTINGS) == "email_not_verified"
    trusting = rules.Settings(**{**_fields(SETTINGS), "trust_emails_without_verification": True})
    assert rules.email_refusal(claims(email_verified=None), trusting) is None
    assert rules.email_refusal(claims(email_verified=False), trusting) == "email_not_verified"
    assert rules.email_refusal(claims(email="ada@evil.example"), trusting) == "email_domain_not_allowed"
    assert rules.email_refusal(claims(email="ada@notacme.example"), SETTINGS) == "email_domain_not_allowed"
    assert rules.email_refusal(claims(email="ada@sub.acme.example"), SETTINGS) == "email_domain_not_allowed"
    assert rules.email_refusal(claims(email=None), SETTINGS) == "no_email"
    assert rules.email_of(claims()) == "ada@acme.example"


def _fields(settings: rules.Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in rules.Settings.__slots__}


def test_groups_map_to_grants_merged_once_per_set():
    assert rules.groups_of(claims(groups=["analysts", 7, "x"]), "groups") == ["analysts", "x"]
    assert rules.groups_of(claims(groups="analysts"), "groups") == ["analysts"]
    assert rules.groups_of(claims(), "groups") == []
    assert rules.mapped_grants(SETTINGS, []) == [Grant("DEVELOPER")]
    assert rules.mapped_grants(SETTINGS, ["analysts", "unmapped"]) == [Grant("DEVELOPER"), Grant("ANALYST")]
    # DEVELOPER on all projects absorbs DEVELOPER on prj_1.
    assert rules.mapped_grants(SETTINGS, ["p1-devs"]) == [Grant("DEVELOPER")]
    assert rules.mapped_grants(SETTINGS, ["p1-devs"], with_defaults=False) == [Grant("DEVELOPER", False, ("prj_1",))]
    assert rules.merged([Grant("X", False, ("a",)), Grant("X", False, ("b", "a"))]) == [Grant("X", False, ("a", "b"))]


def test_settings_are_normalised_or_refused_with_the_fields_name():
    checked = rules.checked_settings(
        rules.Settings(**{**_fields(SETTINGS), "email_domains": ("@Acme.Example.", "acme.example", "b.example")})
    )
    assert checked.email_domains == ("acme.example", "b.example")
    bad = {
        "issuer": {"issuer": "http://sso.acme.example"},
        "emailDomains": {"email_domains": ()},
        "groupsClaim": {"groups_claim": "has space"},
        "signInAgainAfterSeconds": {"sign_in_again_after_seconds": 0},
        "clientId": {"client_id": " tg"},
    }
    for field, change in bad.items():
        with pytest.raises(InvalidInput, match=field):
            rules.checked_settings(rules.Settings(**{**_fields(SETTINGS), **change}))
    assert rules.checked_settings(rules.Settings(**{**_fields(SETTINGS), "issuer": "http://127.0.0.1:9"}), True)
    with pytest.raises(InvalidInput, match="private"):
        rules.checked_settings(rules.Settings(**{**_fields(SETTINGS), "issuer": "https://192.168.1.1"}))


def test_the_client_secret_is_required_the_first_time_and_never_repeated():
    with pytest.raises(InvalidInput, match="required"):
        rules.checked_client_secret(None, first_time=True)
    assert rules.checked_client_secret(None, first_time=False) is None
    with pytest.raises(InvalidInput) as raised:
        rules.checked_client_secret("s3cret\n", first_time=True)
    assert "s3cret" not in str(raised.value)


def test_the_authorization_url_and_the_token_endpoints_client_authentication():
    url = rules.authorization_url("https://idp.example/auth?tenant=1", "tg", "https://tg/cb", "st", "no", "ch")
    assert url.startswith("https://idp.example/auth?tenant=1&response_type=code&client_id=tg")
    assert "code_challenge_method=S256" in url and "scope=openid+email+profile" in url
    assert rules.token_endpoint_auth({}) == "client_secret_basic"
    assert rules.token_endpoint_auth({"token_endpoint_auth_methods_supported": ["client_secret_post"]}) == (
        "client_secret_post"
    )
    with pytest.raises(InvalidInput, match="token_endpoint"):
        rules.checked_endpoint({"token_endpoint": "https://10.0.0.1/token"}, "token_endpoint", False)
    assert rules.pages_origin(None, "http", "localhost:8080") == "http://localhost:8080"
    assert rules.pages_origin("https://tg.example/", "http", "x") == "https://tg.example"


def test_the_groups_scope_is_asked_only_of_a_provider_that_lists_it():
    assert rules.scope({}) == "openid email profile"
    assert rules.scope({"scopes_supported": ["openid", "email", "profile"]}) == "openid email profile"
    assert rules.scope({"scopes_supported": "openid groups"}) == "openid email profile"  # not a list: ignored
    okta = {"scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access", "groups"]}
    assert rules.scope(okta) == "openid email profile groups"
    url = rules.authorization_url(
        "https://idp.example/auth", "tg", "https://tg/cb", "st", "no", "ch", rules.scope(okta)
    )
    assert "scope=openid+email+profile+groups" in url
