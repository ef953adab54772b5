"""The service token mutations and queries as a client sends them, shared by the API tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.conftest import Reply, Server

TOKEN_FIELDS = """
id name displayPrefix format state createdAt lastUsedAt expiresAt rotationRecommended
grants { permissionSet allProjects projects { id } }
"""
CREATE = (
    "mutation($input: CreateServiceTokenInput!) { createServiceToken(input: $input) { secret serviceToken {"
    + TOKEN_FIELDS
    + "} } }"
)
ROTATE = (
    "mutation($id: ID!, $revoke: Int) { rotateServiceToken(id: $id, revokeOldInSeconds: $revoke) { secret serviceToken {"
    + TOKEN_FIELDS
    + "} } }"
)
UPDATE = (
    "mutation($id: ID!, $name: String, $grants: [GrantInput!]) { updateServiceToken(id: $id, name: $name, grants: $grants) {"
    + TOKEN_FIELDS
    + "} }"
)
DELETE = "mutation($id: ID!) { deleteServiceToken(id: $id) {" + TOKEN_FIELDS + "} }"
LIST = "query($all: Boolean) { account { serviceTokens(includeDeleted: $all) {" + TOKEN_FIELDS + "} } }"
REPORT = "mutation($token: String!) { reportLeakedToken(token: $token) }"
VIEWER = "{ viewer { kind account { id } } }"


@dataclass
class Created:
    id: str  # as the API prints it: stk_ + the row key
    secret: str
    token: dict[str, Any]

    @property
    def key(self) -> str:
        """The row key in the tokens table (and inside the secret)."""
        return row_key(self.id)


def row_key(printed_id: str) -> str:
    """The tokens table's key of a token id the API printed (``stk_``/``utk_`` + the key)."""
    return printed_id.removeprefix("stk_").removeprefix("utk_")


def grant(permission_set: str, *projects: str) -> dict[str, Any]:
    if projects:
        return {"permissionSet": permission_set, "allProjects": False, "projectIds": list(projects)}
    return {"permissionSet": permission_set}


def remember(server: Server, reply: Reply, field: str) -> None:
    """Adds any secret in the answer to the suite's issued list (checked against all log output)."""
    answer = (reply.data or {}).get(field)
    if answer and answer.get("secret"):
        server.issued.append(answer["secret"])


async def create(server: Server, caller: str, name: str = "ci", grants: list | None = None, **extra: Any) -> Reply:
    payload = {"name": name, "grants": grants if grants is not None else [grant("JOB_ADMIN")], **extra}
    reply = await server.gql(CREATE, {"input": payload}, token=caller)
    remember(server, reply, "createServiceToken")
    return reply


async def created(server: Server, caller: str, name: str = "ci", grants: list | None = None, **extra: Any) -> Created:
    reply = await create(server, caller, name, grants, **extra)
    assert reply.errors == [], reply.body
    answer = reply.data["createServiceToken"]
    return Created(answer["serviceToken"]["id"], answer["secret"], answer["serviceToken"])


async def rotate(server: Server, caller: str, token_id: str, revoke: int | None = None) -> Reply:
    reply = await server.gql(ROTATE, {"id": token_id, "revoke": revoke}, token=caller)
    remember(server, reply, "rotateServiceToken")
    return reply


async def rotated(server: Server, caller: str, token_id: str, revoke: int | None = None) -> Created:
    reply = await rotate(server, caller, token_id, revoke)
    assert reply.errors == [], reply.body
    answer = reply.data["rotateServiceToken"]
    return Created(answer["serviceToken"]["id"], answer["secret"], answer["serviceToken"])


async def listed(server: Server, caller: str, include_deleted: bool = False) -> dict[str, dict[str, Any]]:
    reply = await server.gql(LIST, {"all": include_deleted}, token=caller)
    assert reply.errors == [], reply.body
    return {t["id"]: t for t in reply.data["account"]["serviceTokens"]}


async def works(server: Server, secret: str) -> bool:
    reply = await server.gql(VIEWER, token=secret)
    assert reply.status in (200, 401), reply.body
    return reply.status == 200
