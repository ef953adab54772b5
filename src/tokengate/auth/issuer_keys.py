"""OIDC issuers' discovery documents and signing keys: those trust policies name (keyless CI,
docs/keyless-ci.md) and the single sign-on providers accounts configure (docs/sign-in.md), and the one request
single sign-on makes to a provider's token endpoint (``post_form``).

An issuer's JWKS is found through its discovery document (``<issuer>/.well-known/openid-configuration``, whose
``issuer`` must be the issuer itself) and kept ``TTL_SECONDS``. A token naming a ``kid`` the set does not hold
makes one refetch, at most once per cooldown. Both documents are fetched with a deadline for the whole fetch and
a size bound, through the webhooks' SSRF guard (every address the client connects to, after DNS), without
redirects or proxies from the environment; one fetch at a time per issuer in this instance, the others waiting
for its result. Only the issuers of stored policies are ever fetched (the exchange checks that first).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tokengate.core.errors import InvalidInput
from tokengate.core.federation import KeysUnavailable
from tokengate.core.webhook_addresses import checked_webhook_url
from tokengate.jobs.webhook_delivery import RefusedAddress, guarded_socket

log = logging.getLogger("tokengate.federation")

TTL_SECONDS: Final = 300.0
MAX_DOCUMENT_BYTES: Final = 256 * 1024
USER_AGENT: Final = "tokengate-federation/1"
SIGNING_KEY_TYPES: Final = ("RSA", "EC")


@dataclass
class _Entry:
    discovery: dict[str, Any] | None = None
    keys: KeySet | None = None
    kids: frozenset[str] = frozenset()
    fetched_at: float = 0.0
    attempted_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def key_set(document: Any) -> tuple[KeySet, frozenset[str]]:
    """The RSA and EC signing keys of a JWKS document, each with a ``kid``; anything else in it is ignored."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeysUnavailable("the JWKS is not a key set")
    usable = [
        key
        for key in document["keys"]
        if isinstance(key, dict)
        and key.get("kty") in SIGNING_KEY_TYPES
        and isinstance(key.get("kid"), str)
        and key.get("use", "sig") == "sig"
        and "d" not in key  # a private key published by mistake is not trusted either
    ]
    imported = []
    for key in usable:
        try:
            imported.append(KeySet.import_key_set({"keys": [key]}).keys[0])
        except (JoseError, ValueError, TypeError, KeyError) as problem:  # one bad key does not spoil the others
            log.info("ignored a key of a JWKS: %s", type(problem).__name__)
    return KeySet(imported), frozenset(str(key.kid) for key in imported)


class IssuerKeys:
    def __init__(
        self,
        allow_private: bool,
        timeout_seconds: float = 5.0,
        cooldown_seconds: float = 30.0,
        max_bytes: int = MAX_DOCUMENT_BYTES,
    ):
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.cooldown_seconds = cooldown_seconds
        self.max_bytes = max_bytes
        self.fetches = 0
        self._entries: dict[str, _Entry] = {}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                socket_factory=guarded_socket(self.allow_private), limit=20, limit_per_host=2, ttl_dns_cache=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                trust_env=False,
                auto_decompress=False,  # the size bound is on the bytes that arrive
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _fresh(self, entry: _Entry, kid: str, now: float) -> bool:
        return entry.keys is not None and kid in entry.kids and now - entry.fetched_at < TTL_SECONDS

    async def keys_for(self, issuer: str, kid: str) -> KeySet:
        """The issuer's keys holding ``kid``, or ``KeysUnavailable`` saying why not."""
        entry = self._entries.setdefault(issuer, _Entry())
        if self._fresh(entry, kid, time.monotonic()):
            assert entry.keys is not None
            return entry.keys
        async with entry.lock:  # one fetch per issuer at a time; the others wait for it
            now = time.monotonic()
            if self._fresh(entry, kid, now):
                assert entry.keys is not None
                return entry.keys
            cooling = entry.attempted_at is not None and now - entry.attempted_at < self.cooldown_seconds
            if not cooling:
                try:
                    await self._refresh(issuer, entry)
                except KeysUnavailable as problem:
                    log.warning("could not fetch the keys of issuer %s: %s", issuer, problem)
                    if entry.keys is None or kid not in entry.kids:
                        raise
            if entry.keys is None:
                raise KeysUnavailable("the issuer's keys could not be fetched (waiting for the cooldown)")
            if kid not in entry.kids:
                raise KeysUnavailable("unknown kid")
            return entry.keys

    async def metadata(self, issuer: str) -> dict[str, Any]:
        """The issuer's discovery document (kept ``TTL_SECONDS``, refetched with its keys), or ``KeysUnavailable``."""
        entry = self._entries.setdefault(issuer, _Entry())
        if entry.discovery is not None and time.monotonic() - entry.fetched_at < TTL_SECONDS:
            return entry.discovery
        async with entry.lock:
            if entry.discovery is not None and time.monotonic() - entry.fetched_at < TTL_SECONDS:
                return entry.discovery
            try:
                await self._refresh(issuer, entry)
            except KeysUnavailable as problem:
                log.warning("could not fetch the discovery document of issuer %s: %s", issuer, problem)
                raise
            assert entry.discovery is not None
            return entry.discovery

    async def _refresh(self, issuer: str, entry: _Entry) -> None:
        """Fetch the issuer's discovery document and keys into ``entry`` (under its lock), or ``KeysUnavailable``
        (what it held before stays)."""
        entry.attempted_at = time.monotonic()
        self.fetches += 1
        try:
            async with asyncio.timeout(self.timeout_seconds):
                discovery = await self._get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
                if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
                    raise KeysUnavailable("the discovery document names another issuer")
                jwks_uri = discovery.get("jwks_uri")
                if not isinstance(jwks_uri, str):
                    raise KeysUnavailable("the discovery document has no jwks_uri")
                entry.keys, entry.kids = key_set(await self._get_json(jwks_uri))
                entry.discovery = discovery
                entry.fetched_at = time.monotonic()
        except TimeoutError:
            raise KeysUnavailable(f"no answer within {self.timeout_seconds:g} s") from None

    async def post_form(self, url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        """POST a form to an issuer's endpoint (the token endpoint) through the same guard, deadline and size
        bound, without redirects: the status and the JSON answer. ``KeysUnavailable`` when there is none."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._request_json("POST", url, form, headers)
        except TimeoutError:
            raise KeysUnavailable(f"no answer within {self.timeout_seconds:g} s") from None

    async def _get_json(self, url: str) -> Any:
        status, document = await self._request_json("GET", url)
        if status != 200:
            raise KeysUnavailable(f"HTTP {status}")
        return document

    async def _request_json(
        self, method: str, url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        try:
            url = checked_webhook_url(url, self.allow_private)
        except InvalidInput as problem:
            raise KeysUnavailable(f"refused URL: {problem}") from None
        try:
            async with self._client().request(
                method, url, data=form, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if method == "GET" and status != 200:
                    raise KeysUnavailable(f"HTTP {status}")
                if response.content_length is not None and response.content_length > self.max_bytes:
                    raise KeysUnavailable(f"larger than {self.max_bytes} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise KeysUnavailable(f"larger than {self.max_bytes} bytes")
        except TimeoutError:
            raise KeysUnavailable(f"no answer within {self.timeout_seconds:g} s") from None
        except aiohttp.ClientConnectorError as problem:
            refused = isinstance(problem.os_error, RefusedAddress)
            raise KeysUnavailable("address refused (private)" if refused else "could not connect") from None
        except (aiohttp.ClientError, OSError) as problem:
            raise KeysUnavailable(f"request failed ({type(problem).__name__})") from None
        try:
            return status, json.loads(bytes(body))
        except ValueError:
            raise KeysUnavailable(f"not JSON (HTTP {status})") from None
