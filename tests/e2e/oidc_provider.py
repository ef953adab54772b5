"""A real OpenID provider for the single sign-on tests: panva's `oidc-provider` (npm, OpenID Certified) run by node
on loopback (tests/e2e/node/oidc_provider.mjs), with one confidential client of the test (code flow, PKCE S256,
client_secret_basic) and accounts whose claims (``email``, ``email_verified``, ``groups``) the test sets and may
change between two sign-ins (the provider reads them again at every sign-in).

Its issuer is ``http://127.0.0.1:PORT``: tokengate takes a plain-http issuer on a loopback address only when
the operator allows private networks (TOKENGATE_WEBHOOK_ALLOW_PRIVATE, the webhooks' SSRF setting), as the
tests' servers do. A browser signs in through the provider's development login form (any password).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.e2e.processes import LOOPBACK, NODE_DIR, running

SCRIPT = NODE_DIR / "oidc_provider.mjs"
CALLBACK_PATH = "/sign-in/sso/callback"


@dataclass
class OpenIdProvider:
    """A running provider: its issuer, the test client's credentials, and the accounts it signs in."""

    issuer: str
    client_id: str
    client_secret: str
    config_path: Path
    log: Path

    def _config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def set_account(self, login: str, **claims: Any) -> None:
        """Adds or replaces the account ``login`` (its ``sub``) with these claims, for the next sign-ins."""
        config = self._config()
        config["accounts"][login] = claims
        self.config_path.write_text(json.dumps(config), encoding="utf-8")

    def remove_account(self, login: str) -> None:
        config = self._config()
        config["accounts"].pop(login, None)
        self.config_path.write_text(json.dumps(config), encoding="utf-8")

    async def sign_in(self, page: Any, login: str) -> None:
        """On the provider's development login form (where tokengate sent ``page``): the login, any password."""
        await page.get_by_placeholder("Enter any login").fill(login)
        await page.get_by_placeholder("and password").fill("any password")
        await page.get_by_role("button", name="Sign-in").click()


@asynccontextmanager
async def openid_provider(
    workdir: Path,
    redirect_uris: Sequence[str],
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    signing_alg: str = "RS256",
    id_token_seconds: int = 300,
) -> AsyncIterator[OpenIdProvider]:
    """Runs oidc-provider on a loopback port of its own until the block ends; its log in ``workdir``."""
    port = free_port()
    client_id = f"tokengate-{secrets.token_hex(4)}"
    client_secret = secrets.token_urlsafe(32)
    config_path = workdir / f"oidc-provider-{port}.json"
    config = {
        "clients": [{"client_id": client_id, "client_secret": client_secret, "redirect_uris": list(redirect_uris)}],
        "accounts": {login: dict(claims) for login, claims in (accounts or {}).items()},
        "id_token_alg": signing_alg,
        "id_token_seconds": id_token_seconds,
    }
    config_path.write_text(json.dumps(config), encoding="utf-8")
    issuer = f"http://{LOOPBACK}:{port}"
    log = workdir / f"oidc-provider-{port}.log"
    async with running(
        "oidc-provider",
        ["node", str(SCRIPT), "--port", str(port), "--config", str(config_path)],
        port=port,
        log=log,
        ready_url=issuer + "/.well-known/openid-configuration",
        cwd=NODE_DIR,
    ):
        yield OpenIdProvider(issuer, client_id, client_secret, config_path, log)
