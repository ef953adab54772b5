"""``POST /oauth/token``: RFC 8693 token exchange for keyless CI (docs/keyless-ci.md).

A workload presents the OIDC token its platform signed (``subject_token``, a JWT); when a trust policy of some
account trusts it, the answer is a new tokengate token (``tgx_…``) carrying the policy's grants for the policy's
lifetime. The JWT is verified with joserfc: the key from the issuer's JWKS by ``kid`` (auth/issuer_keys.py), the
algorithm from ``ALGORITHMS`` only, ``exp``/``nbf``/``iat`` with a bounded skew, then the policy's exact
audience, subject and claims, then its ``jti`` once. Every refusal answers RFC 6749's ``invalid_grant`` and
nothing else; the audit log of the accounts whose policies the token was meant for (its issuer and audience) says
why, and never holds the token. Each refusal costs the client's address one unit of the failure budget shared with
every other door, and past it the exchange answers 429 before any work.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from tokengate.auth.gate import Refusal, rate_limited, unavailable
from tokengate.auth.issuer_keys import IssuerKeys
from tokengate.core import trust_policies as rules
from tokengate.core.federation import KeysUnavailable
from tokengate.core.limits import OverLimit, address_key
from tokengate.http.bodies import read_in_time
from tokengate.http.introspection import BadRequest, one, read_form
from tokengate.http.responses import json_response
from tokengate.runtime import RUNTIME
from tokengate.services import trust_policies as service
from tokengate.store import DATABASE_UNAVAILABLE, DatabaseUnavailable
from tokengate.store import trust_policies as store
from tokengate.store.trust_policies import TrustPolicyRow

log = logging.getLogger("tokengate.federation")

ROUTE: Final = "/oauth/token"
MAX_FORM_BYTES: Final = rules.MAX_SUBJECT_TOKEN_LENGTH + 2048
INVALID_GRANT: Final = {"error": "invalid_grant"}
ISSUER_KEYS: Final = web.AppKey("issuer_keys", IssuerKeys)


class Refused(Exception):
    """The presented token is not exchanged: ``reason`` for the audit log; ``audit_to`` the policies it was meant
    for (their accounts are told)."""

    def __init__(self, reason: str, audit_to: list[TrustPolicyRow] | None = None, claims: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.audit_to = audit_to or []
        self.claims = claims or {}


def oauth_error(status: int, error: str, description: str | None = None, headers: Any = None) -> web.Response:
    payload = {"error": error}
    if description is not None:
        payload["error_description"] = description
    return json_response(payload, status, headers)


def _unverified(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JWT's header and claims before any check: only to find the issuer's policies and keys."""
    if len(text) > rules.MAX_SUBJECT_TOKEN_LENGTH:
        raise Refused("subject_token too long")
    try:
        compact = extract_compact(text.encode("ascii"))
        header = compact.headers()
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise Refused("subject_token is not a JWS compact JWT") from None
    if not isinstance(claims, dict) or not isinstance(header, dict):
        raise Refused("subject_token claims are not an object")
    return header, claims


async def verified(request: web.Request, text: str) -> tuple[TrustPolicyRow, dict[str, Any]]:
    """The one policy that trusts the presented token, and its verified claims; ``Refused`` otherwise."""
    runtime = request.app[RUNTIME]
    header, unverified = _unverified(text)
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise Refused("no iss")
    policies = await store.of_issuer(runtime.pool, issuer)
    if not policies:
        raise Refused("issuer not trusted by any policy")
    meant_for = [policy for policy in policies if rules.audience_matches(policy.binding, unverified)]
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in rules.ALGORITHMS:
        raise Refused(f"algorithm not allowed ({str(alg)[:16]})", meant_for, unverified)
    if not isinstance(kid, str) or not kid:
        raise Refused("no kid", meant_for, unverified)
    try:
        keys = await request.app[ISSUER_KEYS].keys_for(issuer, kid)
    except KeysUnavailable as unavailable_keys:
        raise Refused(f"no key: {unavailable_keys}", meant_for, unverified) from None
    try:
        claims = dict(jwt.decode(text, keys, algorithms=list(rules.ALGORITHMS)).claims)
    except (JoseError, ValueError, TypeError) as invalid:
        raise Refused(f"signature not valid ({type(invalid).__name__})", meant_for, unverified) from None
    problem = rules.time_problem(claims, time.time())
    if problem is not None:
        raise Refused(problem, meant_for, claims)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
        raise Refused("no jti", meant_for, claims)
    matching = [policy for policy in policies if rules.mismatch(policy.binding, claims) is None]
    if not matching:
        first = rules.mismatch(meant_for[0].binding, claims) if meant_for else "aud"
        raise Refused(f"no policy matches ({first})", meant_for, claims)
    if len(matching) > 1:
        raise Refused("several policies match: make their conditions distinct", matching, claims)
    return matching[0], claims


async def exchange(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    gate = runtime.gate
    throttle = gate.throttle
    try:
        client_addr = gate.client_address(request)
        address = address_key(client_addr)
        throttle.take(throttle.address, address)
        throttle.require(throttle.failures, address)  # past its failure budget: no work at all
    except Refusal as refusal:
        return oauth_error(refusal.status, "invalid_request", refusal.message, refusal.headers)
    except OverLimit as over:
        limited = rate_limited(over)
        return oauth_error(limited.status, "slow_down", limited.message, limited.headers)
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        return oauth_error(400, "invalid_request", f"the body is larger than {MAX_FORM_BYTES} bytes")
    body = await read_in_time(request, runtime.config.limits.body_timeout)
    if len(body) > MAX_FORM_BYTES:
        return oauth_error(400, "invalid_request", f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        form = read_form(request, body)
        grant_type = one(form, "grant_type")
        if grant_type != rules.GRANT_TYPE:
            return oauth_error(400, "unsupported_grant_type", f"grant_type must be {rules.GRANT_TYPE}")
        if one(form, "subject_token_type") != rules.JWT_TOKEN_TYPE:
            return oauth_error(400, "invalid_request", f"subject_token_type must be {rules.JWT_TOKEN_TYPE}")
        text = one(form, "subject_token")
    except BadRequest as problem:
        return oauth_error(400, "invalid_request", str(problem))
    try:
        policy, claims = await verified(request, text)
        outcome = await service.exchange(runtime.backend, policy, claims, client_addr)
        if isinstance(outcome, str):
            raise Refused(outcome, [policy], claims)
    except Refused as refused:
        throttle.failures.charge(address, 1)
        log.info("token exchange refused: %s", refused.reason)
        if refused.audit_to:
            try:
                await service.audit_refusal(
                    runtime.backend, refused.audit_to, refused.reason, refused.claims, client_addr
                )
            except DATABASE_UNAVAILABLE as problem:  # the answer is the same; the log says the audit is missing
                log.warning("could not audit a refused token exchange: %s", type(problem).__name__)
        return json_response(INVALID_GRANT, 400)
    except (DatabaseUnavailable, *DATABASE_UNAVAILABLE):
        down = unavailable()
        return oauth_error(503, "temporarily_unavailable", down.message, down.headers)
    expires_in = max(0, int((outcome.expires_at - datetime.now(UTC)).total_seconds()))
    return json_response(
        {
            "access_token": outcome.text,
            "issued_token_type": rules.ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": expires_in,
        }
    )


def add_routes(app: web.Application) -> None:
    async def issuer_keys(app: web.Application) -> Any:
        config = app[RUNTIME].config
        keys = IssuerKeys(
            config.webhook_allow_private,
            config.federation_fetch_timeout_seconds,
            config.federation_refetch_cooldown_seconds,
        )
        app[ISSUER_KEYS] = keys
        yield
        await keys.close()

    app.cleanup_ctx.append(issuer_keys)
    app.router.add_post(ROUTE, exchange)
