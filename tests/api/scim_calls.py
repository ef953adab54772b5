"""SCIM tokens through GraphQL, and /scim/v2 as an identity provider sends it, shared by the API tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.conftest import Server

SCIM_TOKEN_FIELDS = "id name displayPrefix createdAt createdBy lastUsedAt revokedAt"
CREATE_SCIM_TOKEN = (
    "mutation($name: String!) { createScimToken(name: $name) { secret scimToken { " + SCIM_TOKEN_FIELDS + " } } }"
)
REVOKE_SCIM_TOKEN = "mutation($id: ID!) { revokeScimToken(id: $id) { " + SCIM_TOKEN_FIELDS + " } }"
SCIM_TOKENS = "query($all: Boolean!) { account { scimTokens(includeRevoked: $all) { " + SCIM_TOKEN_FIELDS + " } } }"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@dataclass
class ScimReply:
    status: int
    body: Any
    headers: Any

    @property
    def scim_type(self) -> str | None:
        return self.body.get("scimType") if isinstance(self.body, dict) else None


async def scim_token(server: Server, admin_token: str, name: str = "okta") -> tuple[str, str]:
    """A new SCIM token made by ``admin_token``'s holder: (its scm_ id, its secret)."""
    reply = await server.gql(CREATE_SCIM_TOKEN, {"name": name}, admin_token)
    assert reply.errors == [], reply.body
    created = reply.data["createScimToken"]
    server.issued.append(created["secret"])
    return created["scimToken"]["id"], created["secret"]


async def scim(
    server: Server, method: str, path: str, token: str | None, body: Any = None, raw: bytes | None = None
) -> ScimReply:
    """One request to /scim/v2 + ``path`` (query string included) with ``token`` as the bearer."""
    headers = {"Content-Type": "application/scim+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with server.session.request(method, server.url + "/scim/v2" + path, data=data, headers=headers) as response:
        text = await response.text()
        parsed = json.loads(text) if text else None
        return ScimReply(response.status, parsed, response.headers)


def user(user_name: str, active: bool = True, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER_SCHEMA], "userName": user_name, "active": active, **attributes}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


async def provisioned(server: Server, token: str, user_name: str, **attributes: Any) -> dict[str, Any]:
    reply = await scim(server, "POST", "/Users", token, user(user_name, **attributes))
    assert reply.status == 201, reply.body
    return reply.body
