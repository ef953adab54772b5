"""Trust policies for keyless CI (docs/keyless-ci.md): which workload OIDC tokens may be exchanged for a
short-lived tokengate token (RFC 8693), and the rules of the exchange. Pure, no I/O.

A policy binds an issuer (https, checked against SSRF as webhook URLs are), one exact audience, one exact subject
and further claim conditions, each an exact match: no pattern anywhere. The presets bind what the platforms'
security guidance binds: the repository (project) and its owner's numeric id, which a deleted owner's successor
under the same name does not have.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tokengate.core.errors import InvalidInput
from tokengate.core.validation import shown
from tokengate.core.webhook_addresses import checked_webhook_url

DEFAULT_LIFETIME_SECONDS: Final = 15 * 60
MIN_LIFETIME_SECONDS: Final = 60
MAX_LIFETIME_SECONDS: Final = 3600
MAX_CONDITIONS: Final = 20
MAX_VALUE_LENGTH: Final = 1024
# The presented token: algorithms from this list only (never the token's header), a bounded clock skew, and fresh:
# CI tokens live minutes, so one that claims to live longer than this is refused.
ALGORITHMS: Final = ("RS256", "ES256")
CLOCK_SKEW_SECONDS: Final = 60
MAX_SUBJECT_TOKEN_LIFETIME_SECONDS: Final = 3600
MAX_SUBJECT_TOKEN_LENGTH: Final = 16 * 1024

GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"

GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER: Final = "https://gitlab.com"

_CLAIM_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
_DIGITS: Final = re.compile(r"[0-9]{1,20}")
_PATH: Final = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")
# Claims a condition may not name: the registered ones are checked by the exchange itself.
_RESERVED: Final = frozenset({"iss", "aud", "sub", "exp", "nbf", "iat", "jti"})


@dataclass(frozen=True, slots=True)
class Binding:
    """What a policy trusts: tokens of ``issuer`` for ``audience`` about ``subject`` whose claims equal
    ``conditions``."""

    issuer: str
    audience: str
    subject: str
    conditions: Mapping[str, str]


def checked_issuer(url: str, allow_private: bool = False) -> str:
    """An issuer URL: https, no credentials, no query or fragment, to a public host unless the operator allows
    private networks (the webhooks' rule, core/webhook_addresses.py)."""
    try:
        text = checked_webhook_url(url, allow_private)
    except InvalidInput as problem:
        raise InvalidInput("issuer: " + str(problem).removeprefix("url ")) from None
    if "?" in text:
        raise InvalidInput("issuer must not have a ?query")
    return text


def _value(what: str, value: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE_LENGTH or value != value.strip():
        raise InvalidInput(f"{what} must be 1 to {MAX_VALUE_LENGTH} characters without surrounding spaces")
    if any(ord(character) < 32 for character in value):
        raise InvalidInput(f"{what} must not contain control characters")
    return value


def checked_conditions(conditions: Mapping[str, str]) -> dict[str, str]:
    if len(conditions) > MAX_CONDITIONS:
        raise InvalidInput(f"at most {MAX_CONDITIONS} claim conditions")
    checked: dict[str, str] = {}
    for name, value in conditions.items():
        if not _CLAIM_NAME.fullmatch(name):
            raise InvalidInput(f"claim condition name {shown(name)!r} is not a claim name")
        if name in _RESERVED:
            raise InvalidInput(f"{name} is checked by the exchange itself: give it as issuer, audience or subject")
        checked[name] = _value(f"claim condition {name}", value)
    return dict(sorted(checked.items()))


def checked_binding(binding: Binding, allow_private: bool = False) -> Binding:
    return Binding(
        issuer=checked_issuer(binding.issuer, allow_private),
        audience=_value("audience", binding.audience),
        subject=_value("subject", binding.subject),
        conditions=checked_conditions(binding.conditions),
    )


def checked_lifetime(seconds: int | None) -> int:
    if seconds is None:
        return DEFAULT_LIFETIME_SECONDS
    if not MIN_LIFETIME_SECONDS <= seconds <= MAX_LIFETIME_SECONDS:
        raise InvalidInput(f"maxLifetimeSeconds must be {MIN_LIFETIME_SECONDS} to {MAX_LIFETIME_SECONDS}")
    return seconds


def _digits(what: str, value: str) -> str:
    if not _DIGITS.fullmatch(value):
        raise InvalidInput(f"{what} must be the numeric id (digits only), not a name: names can be registered again")
    return value


def _path(what: str, value: str) -> str:
    if not _PATH.fullmatch(value):
        raise InvalidInput(f"{what} must be a path such as owner/name")
    return value


def github_actions(
    *,
    audience: str,
    repository: str,
    repository_owner_id: str,
    workflow: str | None = None,
    ref: str | None = None,
    environment: str | None = None,
    issuer: str = GITHUB_ISSUER,
) -> Binding:
    """GitHub Actions: the repository ``owner/name`` and its owner's numeric id, and the job's ref or environment
    (what the token's ``sub`` says: ``repo:owner/name:environment:prod`` for a job with an environment, else
    ``repo:owner/name:ref:refs/heads/main``). ``workflow`` (the file name, ``deploy.yml``) binds
    ``job_workflow_ref``, which names the ref too."""
    repository = _path("repository", repository)
    conditions = {"repository": repository, "repository_owner_id": _digits("repositoryOwnerId", repository_owner_id)}
    if environment is not None:
        subject = f"repo:{repository}:environment:{_value('environment', environment)}"
        conditions["environment"] = environment
        if ref is not None:
            conditions["ref"] = _value("ref", ref)
    elif ref is not None:
        subject = f"repo:{repository}:ref:{_value('ref', ref)}"
    else:
        raise InvalidInput("give ref (refs/heads/main) or environment: the token's sub names one of them")
    if workflow is not None:
        if ref is None:
            raise InvalidInput("give ref with workflow: job_workflow_ref names the workflow file at a ref")
        if "/" in workflow or not workflow.endswith((".yml", ".yaml")):
            raise InvalidInput("workflow must be a file name under .github/workflows, such as deploy.yml")
        conditions["job_workflow_ref"] = f"{repository}/.github/workflows/{workflow}@{ref}"
    return Binding(issuer, audience, subject, conditions)


def gitlab_ci(
    *,
    audience: str,
    project_path: str,
    namespace_id: str,
    project_id: str,
    ref: str,
    ref_type: str = "branch",
    environment: str | None = None,
    issuer: str = GITLAB_ISSUER,
) -> Binding:
    """GitLab CI: the project's path, its namespace's and its own numeric ids, and the ref (GitLab's ``sub`` is
    ``project_path:group/project:ref_type:branch:ref:main``); optionally the environment."""
    project_path = _path("projectPath", project_path)
    if ref_type not in ("branch", "tag"):
        raise InvalidInput("refType must be branch or tag")
    subject = f"project_path:{project_path}:ref_type:{ref_type}:ref:{_value('ref', ref)}"
    conditions = {
        "project_path": project_path,
        "namespace_id": _digits("namespaceId", namespace_id),
        "project_id": _digits("projectId", project_id),
    }
    if environment is not None:
        conditions["environment"] = _value("environment", environment)
    return Binding(issuer, audience, subject, conditions)


def _claim_text(value: Any) -> str | None:
    """A claim as text for an exact comparison: strings as they are, integers in decimal (GitLab and GitHub send
    ids as strings, others as numbers); anything else (booleans, lists, objects) never matches."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def audience_matches(binding: Binding, claims: Mapping[str, Any]) -> bool:
    audience = claims.get("aud")
    if isinstance(audience, str):
        return audience == binding.audience
    return isinstance(audience, list) and binding.audience in [a for a in audience if isinstance(a, str)]


def mismatch(binding: Binding, claims: Mapping[str, Any]) -> str | None:
    """Which of the binding's checks the verified claims fail (for the audit log, never for the client), or
    None when they match."""
    if claims.get("iss") != binding.issuer:
        return "iss"
    if not audience_matches(binding, claims):
        return "aud"
    if claims.get("sub") != binding.subject:
        return "sub"
    for name, value in binding.conditions.items():
        if _claim_text(claims.get(name)) != value:
            return f"claim {name}"
    return None


def time_problem(claims: Mapping[str, Any], now: float, skew: int = CLOCK_SKEW_SECONDS) -> str | None:
    """Why the presented token is not valid at ``now`` (exp, nbf, iat with ``skew``; and fresh), or None."""
    values = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
    for name in ("exp", "iat"):
        if name not in claims:
            return f"{name} missing"
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name} not a number"
    exp, iat, nbf = values["exp"], values["iat"], values["nbf"]
    assert isinstance(exp, int | float) and isinstance(iat, int | float)
    if exp <= now - skew:
        return "expired"
    if isinstance(nbf, int | float) and nbf > now + skew:
        return "not yet valid (nbf)"
    if iat > now + skew:
        return "issued in the future (iat)"
    if exp - iat > MAX_SUBJECT_TOKEN_LIFETIME_SECONDS or exp > now + MAX_SUBJECT_TOKEN_LIFETIME_SECONDS + skew:
        return "lives too long"
    return None
