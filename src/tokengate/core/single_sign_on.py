"""Single sign-on with an OpenID Connect provider: the rules that need no I/O (docs/sign-in.md "Single sign-on").

- The settings an account admin saves: the issuer (the webhooks' address rule), the client, the e-mail domains
  that may sign in, the grants of a member made just in time and of the provider's groups, enforcement and how
  long an SSO session lasts.
- The ID token's claims beyond its signature: ``iss``, ``aud`` (and ``azp`` when there are several audiences),
  ``exp``, ``iat``, ``nonce``, ``sub``.
- Who the claims may sign in as: linked by (issuer, subject) only; a member made just in time only for an e-mail
  of the account's domains that the provider asserts verified (``email_verified: true``), or any e-mail of those
  domains when the admin marked the provider authoritative for them (Entra ID sends no ``email_verified``; trusting
  an unverified ``email`` claim is the "nOAuth" takeover).
- The grants of the provider's groups.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from tokengate.core.errors import InvalidInput
from tokengate.core.policy import Grant
from tokengate.core.trust_policies import checked_issuer
from tokengate.core.validation import shown

ALGORITHMS: Final = ("RS256", "ES256")
CLOCK_SKEW_SECONDS: Final = 60
SCOPE: Final = "openid email profile"
GROUPS_SCOPE: Final = "groups"  # Okta sends the groups claim only when it is asked for
FLOW_SECONDS: Final = 600  # a started sign-in must come back within 10 minutes
FLOW_COOKIE: Final = "__Host-tokengate_sso"
START_PATH: Final = "/sign-in/sso"
CALLBACK_PATH: Final = "/sign-in/sso/callback"
DEFAULT_GROUPS_CLAIM: Final = "groups"
DEFAULT_SIGN_IN_AGAIN_SECONDS: Final = 86_400
MIN_SIGN_IN_AGAIN_SECONDS: Final = 1  # short ones are for tests (the e2e signs in again after a few seconds)
MAX_SIGN_IN_AGAIN_SECONDS: Final = 30 * 86_400
MAX_DOMAINS: Final = 50
MAX_MAPPINGS: Final = 200
MAX_CLIENT_ID_LENGTH: Final = 512
MAX_CLIENT_SECRET_LENGTH: Final = 1024
MAX_GROUP_LENGTH: Final = 256
MAX_ID_TOKEN_LENGTH: Final = 16 * 1024
MAX_GROUPS_IN_TOKEN: Final = 1000

_DOMAIN: Final = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
_CLAIM_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,127}")


@dataclass(frozen=True, slots=True)
class GroupMapping:
    group: str
    grants: tuple[Grant, ...]


@dataclass(frozen=True, slots=True)
class Settings:
    """What an account admin configures (the client secret apart: it is sealed and never read back)."""

    issuer: str
    client_id: str
    email_domains: tuple[str, ...]
    trust_emails_without_verification: bool = False
    default_grants: tuple[Grant, ...] = ()
    groups_claim: str = DEFAULT_GROUPS_CLAIM
    group_mappings: tuple[GroupMapping, ...] = ()
    enforced: bool = False
    sign_in_again_after_seconds: int = DEFAULT_SIGN_IN_AGAIN_SECONDS


def checked_domain(text: str) -> str:
    domain = text.strip().lower().removeprefix("@").rstrip(".")
    if not _DOMAIN.fullmatch(domain):
        raise InvalidInput(f"emailDomains: {shown(text)!r} is not a domain name such as example.com")
    return domain


def _text(what: str, value: str, maximum: int) -> str:
    if not 1 <= len(value) <= maximum or value != value.strip() or any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{what} must be 1 to {maximum} characters without spaces around or control characters")
    return value


def checked_settings(settings: Settings, allow_private: bool = False) -> Settings:
    """The settings normalised (domains lower-case, sorted, once), or ``InvalidInput`` naming the field."""
    issuer = checked_issuer(settings.issuer, allow_private)
    if not settings.email_domains:
        raise InvalidInput("emailDomains: give at least one domain whose members may sign in")
    if len(settings.email_domains) > MAX_DOMAINS:
        raise InvalidInput(f"emailDomains: at most {MAX_DOMAINS}")
    domains = tuple(sorted({checked_domain(domain) for domain in settings.email_domains}))
    if not _CLAIM_NAME.fullmatch(settings.groups_claim):
        raise InvalidInput("groupsClaim must be a claim name such as groups")
    if len(settings.group_mappings) > MAX_MAPPINGS:
        raise InvalidInput(f"groupMappings: at most {MAX_MAPPINGS}")
    groups = [_text("groupMappings.group", mapping.group, MAX_GROUP_LENGTH) for mapping in settings.group_mappings]
    if len(set(groups)) != len(groups):
        raise InvalidInput("groupMappings: each group once")
    seconds = settings.sign_in_again_after_seconds
    if not MIN_SIGN_IN_AGAIN_SECONDS <= seconds <= MAX_SIGN_IN_AGAIN_SECONDS:
        raise InvalidInput(
            f"signInAgainAfterSeconds must be {MIN_SIGN_IN_AGAIN_SECONDS} to {MAX_SIGN_IN_AGAIN_SECONDS}"
        )
    return replace(
        settings,
        issuer=issuer,
        client_id=_text("clientId", settings.client_id, MAX_CLIENT_ID_LENGTH),
        email_domains=domains,
    )


def checked_client_secret(secret: str | None, first_time: bool) -> str | None:
    """The new client secret, None to keep the stored one; the message never repeats it."""
    if secret is None or secret == "":
        if first_time:
            raise InvalidInput("clientSecret is required when single sign-on is first configured")
        return None
    if len(secret) > MAX_CLIENT_SECRET_LENGTH or any(ord(c) < 32 for c in secret) or secret != secret.strip():
        raise InvalidInput(
            f"clientSecret must be at most {MAX_CLIENT_SECRET_LENGTH} characters without spaces around or control "
            "characters"
        )
    return secret


def every_grant(settings: Settings) -> list[Grant]:
    """Every grant the settings can give: the default ones and those of each mapped group."""
    return [*settings.default_grants, *(grant for mapping in settings.group_mappings for grant in mapping.grants)]


# The provider's metadata and the flow


def checked_endpoint(metadata: Mapping[str, Any], name: str, allow_private: bool) -> str:
    """An endpoint of the discovery document: https (the webhooks' rule), else ``InvalidInput`` naming it."""
    value = metadata.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the provider's discovery document has no {name}")
    try:
        return checked_issuer(value, allow_private) if name != "authorization_endpoint" else _browser_url(value)
    except InvalidInput as problem:
        raise InvalidInput(f"the provider's {name}: {problem}") from None


def _browser_url(value: str) -> str:
    """The authorization endpoint is opened by the browser, not fetched by the server: http(s), no fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment or len(value) > 2048:
        raise InvalidInput("must be an http(s) URL without a fragment")
    return value


def token_endpoint_auth(metadata: Mapping[str, Any]) -> str:
    """client_secret_basic, or client_secret_post when the provider says it supports only that."""
    methods = metadata.get("token_endpoint_auth_methods_supported")
    if isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods:
        return "client_secret_post"
    return "client_secret_basic"


def scope(metadata: Mapping[str, Any]) -> str:
    """The scopes asked for: ``openid email profile``, and ``groups`` when the discovery document lists it in
    ``scopes_supported`` (Okta sends the groups claim only for that scope; other providers refuse a scope they do
    not know, so it is asked only of those that list it)."""
    supported = metadata.get("scopes_supported")
    if isinstance(supported, list) and GROUPS_SCOPE in supported:
        return f"{SCOPE} {GROUPS_SCOPE}"
    return SCOPE


def authorization_url(
    endpoint: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    nonce: str,
    code_challenge: str,
    scopes: str = SCOPE,
) -> str:
    """Where the browser is sent: the code flow with PKCE (S256), state and nonce, asking for ``scopes``."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return endpoint + ("&" if "?" in endpoint else "?") + query


def pages_origin(public_url: str | None, scheme: str, host: str | None) -> str:
    """The pages' origin: the configured public URL, else the request's own scheme and Host."""
    if public_url:
        return public_url.rstrip("/")
    return f"{scheme}://{host or 'localhost'}"


def redirect_uri(origin: str) -> str:
    return origin + CALLBACK_PATH


def sign_in_path(account_id: str) -> str:
    return START_PATH + "?" + urlencode({"account": account_id})


# The ID token's claims


def claims_problem(claims: Mapping[str, Any], issuer: str, client_id: str, nonce: str, now: float) -> str | None:
    """Why verified claims are not a sign-in for this flow (the audit log's reason), or None."""
    if claims.get("iss") != issuer:
        return "wrong_issuer"
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if client_id not in audiences:
        return "wrong_audience"
    if len(audiences) > 1 and claims.get("azp") != client_id:
        return "wrong_authorized_party"
    if "azp" in claims and claims.get("azp") != client_id:
        return "wrong_authorized_party"
    exp, iat = claims.get("exp"), claims.get("iat")
    for value in (exp, iat):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "missing_time_claims"
    assert isinstance(exp, int | float) and isinstance(iat, int | float)
    if exp <= now - CLOCK_SKEW_SECONDS:
        return "expired_id_token"
    if iat > now + CLOCK_SKEW_SECONDS:
        return "id_token_issued_in_the_future"
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        return "nonce_mismatch"
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 1 <= len(subject) <= 255:
        return "no_subject"
    return None


def email_of(claims: Mapping[str, Any]) -> str | None:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 320:
        return None
    return email.strip().lower()


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[1]


def email_refusal(claims: Mapping[str, Any], settings: Settings) -> str | None:
    """Why the claims' e-mail may not make a member just in time (the audit log's reason), or None.

    The provider must assert the e-mail verified (``email_verified`` true, the boolean or the string some
    providers send), unless the admin marked it authoritative for the account's domains; and the e-mail must be
    of one of those domains. Only then may an unknown (issuer, subject) become a member."""
    email = email_of(claims)
    if email is None:
        return "no_email"
    if domain_of(email) not in settings.email_domains:
        return "email_domain_not_allowed"
    verified = claims.get("email_verified")
    if verified is True or verified == "true":
        return None
    if settings.trust_emails_without_verification and verified is None:
        return None
    return "email_not_verified"


def groups_of(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The provider's groups in the configured claim (a list of strings, or one string); others ignored."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [group for group in value[:MAX_GROUPS_IN_TOKEN] if isinstance(group, str)]
    return []


def mapped_grants(settings: Settings, groups: Iterable[str], with_defaults: bool = True) -> list[Grant]:
    """The default grants (``with_defaults``) and those of every mapped group the member is in, each set once on
    a scope (a set on all projects absorbs the same set on listed projects)."""
    held = set(groups)
    chosen: list[Grant] = list(settings.default_grants) if with_defaults else []
    for mapping in settings.group_mappings:
        if mapping.group in held:
            chosen.extend(mapping.grants)
    return merged(chosen)


def merged(grants: Sequence[Grant]) -> list[Grant]:
    """The grants with each permission set once: on all projects if any of them is, else on the union."""
    by_set: dict[str, Grant] = {}
    for grant in grants:
        known = by_set.get(grant.permission_set)
        if known is None:
            by_set[grant.permission_set] = Grant(grant.permission_set, grant.all_projects, tuple(grant.project_ids))
        elif known.all_projects or grant.all_projects:
            by_set[grant.permission_set] = Grant(grant.permission_set, True, ())
        else:
            projects = tuple(dict.fromkeys((*known.project_ids, *grant.project_ids)))
            by_set[grant.permission_set] = Grant(grant.permission_set, False, projects)
    return list(by_set.values())
