"""What the services need of an OpenID provider's documents (discovery, JWKS, the token endpoint), as a seam:
``auth/issuer_keys.IssuerKeys`` fetches them through the SSRF guard; the services only name what they use."""

from __future__ import annotations

from typing import Any, Protocol


class KeysUnavailable(Exception):
    """No key for this token: the issuer could not be fetched, or has no such ``kid``. The message is for the
    audit log and the server log (never the client)."""


class ProviderDocuments(Protocol):
    async def metadata(self, issuer: str) -> dict[str, Any]: ...

    async def keys_for(self, issuer: str, kid: str) -> Any: ...  # a joserfc KeySet (core imports no library)

    async def post_form(self, url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]: ...
