"""Drives a live tokengate with the client ariadne-codegen generated, as a client project would.

Runs under the codegen virtualenv's Python (pydantic, httpx; no tokengate, no pytest):
    python codegen_driver.py PACKAGE_DIR URL TOKEN
and prints one JSON object with what each typed call returned, for the test to check. It prints the
secrets it was given back too: they are test tokens, and the suite checks that none reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def drive(url: str, token: str) -> dict[str, Any]:
    from tokengate_client import Client, CreateServiceTokenInput, GrantInput, PermissionSetKey
    from tokengate_client.exceptions import GraphQLClientGraphQLMultiError, GraphQLClientHttpError

    def connect(secret: str) -> Client:
        return Client(url=url, headers={"Authorization": f"Bearer {secret}"})

    async def whoami(secret: str) -> Any:
        """The viewer's kind and token id, or the HTTP status of the refusal."""
        async with connect(secret) as client:
            try:
                viewer = (await client.viewer()).viewer
            except GraphQLClientHttpError as refused:
                return refused.status_code
        return {"kind": viewer.kind.value, "token_id": viewer.service_token.id if viewer.service_token else None}

    def token_fields(token: Any) -> dict[str, Any]:
        return {
            "id": token.id,
            "name": token.name,
            "display_prefix": token.display_prefix,
            "format": token.format.value,
            "state": token.state.value,
            "grants": [
                {
                    "permission_set": grant.permission_set.value,
                    "all_projects": grant.all_projects,
                    "project_ids": [project.id for project in grant.projects],
                }
                for grant in token.grants
            ],
        }

    out: dict[str, Any] = {"secrets": []}
    async with connect(token) as admin:
        viewer = (await admin.viewer()).viewer
        # Enums come back as the generated Python enums, not strings: that is the point of a typed client.
        out["viewer"] = {
            "kind": viewer.kind.value,
            "kind_type": type(viewer.kind).__name__,
            "account_id": viewer.account.id,
            "plan": viewer.account.plan.value,
            "user_id": viewer.user.id if viewer.user else None,
        }
        project = (await admin.create_project(name="codegen project")).create_project
        assert project is not None
        out["project"] = {"id": project.id, "name": project.name}

        grant = GrantInput(permission_set=PermissionSetKey.JOB_ADMIN, all_projects=False, project_ids=[project.id])
        created = (
            await admin.create_service_token(input=CreateServiceTokenInput(name="scheduler", grants=[grant]))
        ).create_service_token
        assert created is not None
        out["secrets"].append(created.secret)
        out["created"] = token_fields(created.service_token)
        out["created_whoami"] = await whoami(created.secret)

        # A field the token may not use: the typed client raises the GraphQL error with its code.
        async with connect(created.secret) as scheduler:
            try:
                await scheduler.create_project(name="not allowed")
                out["forbidden"] = None
            except GraphQLClientGraphQLMultiError as refused:
                out["forbidden"] = [error.extensions.get("code") for error in refused.errors if error.extensions]

        rotated = (await admin.rotate_service_token(id=created.service_token.id)).rotate_service_token
        assert rotated is not None
        out["secrets"].append(rotated.secret)
        out["rotated"] = token_fields(rotated.service_token)
        out["after_rotation"] = {"old": await whoami(created.secret), "new": await whoami(rotated.secret)}

        deleted = (await admin.delete_service_token(id=created.service_token.id)).delete_service_token
        assert deleted is not None
        out["deleted"] = token_fields(deleted)
        out["after_delete"] = {"old": await whoami(created.secret), "new": await whoami(rotated.secret)}

    out["unauthenticated"] = await whoami("tgs_not_a_token")
    return out


def main() -> None:
    package_dir, url, token = sys.argv[1:4]
    sys.path.insert(0, package_dir)
    print(json.dumps(asyncio.run(drive(url, token))))


if __name__ == "__main__":
    main()
