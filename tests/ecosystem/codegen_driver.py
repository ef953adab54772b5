"""Drives a live tokengate with the client ariadne-codegen generated, as a client project would.

Runs under the codegen virtualenv's Python (pydantic, httpx; no tokengate, no pytest):
    python codegen_driver.py PACKAGE_DIR URL TOKEN
and prints one JSON object with what each typed call returned, for the test to check.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def drive(url: str, token: str) -> dict[str, Any]:
    from tokengate_client import Client
    from tokengate_client.exceptions import GraphQLClientHttpError

    out: dict[str, Any] = {}
    async with Client(url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        viewer = (await client.viewer()).viewer
        # Enums come back as the generated Python enums, not strings: that is the point of a typed client.
        out["viewer"] = {
            "kind": viewer.kind.value,
            "kind_type": type(viewer.kind).__name__,
            "account_id": viewer.account.id,
            "plan": viewer.account.plan.value,
            "user_id": viewer.user.id if viewer.user else None,
        }
        project = (await client.create_project(name="codegen project")).create_project
        out["project"] = {"id": project.id, "name": project.name} if project else None

    async with Client(url=url, headers={"Authorization": "Bearer tgs_not_a_token"}) as stranger:
        try:
            await stranger.viewer()
            out["unauthenticated"] = None
        except GraphQLClientHttpError as refused:
            out["unauthenticated"] = refused.status_code
    return out


def main() -> None:
    package_dir, url, token = sys.argv[1:4]
    sys.path.insert(0, package_dir)
    print(json.dumps(asyncio.run(drive(url, token))))


if __name__ == "__main__":
    main()
