"""Projects of an account."""

from __future__ import annotations

from tokengate.core import tokens
from tokengate.core.invalidations import AccountChanged
from tokengate.core.policy import require, require_account
from tokengate.core.validation import checked_name
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import projects as project_store
from tokengate.store.projects import ProjectRow


async def create(backend: Backend, actor: Actor, account_id: str, name: str) -> ProjectRow:
    """A new project. Principals carry their account's project ids, so every instance reloads the account's."""
    require_account(actor.principal, account_id)
    require(actor.principal, "PROJECT_CREATION", "WRITE")
    name = checked_name(name)
    async with backend.change(actor) as work:
        await work.account(account_id)
        project = await project_store.create_project(work.conn, tokens.new_id("prj"), account_id, name)
        await work.audit(account_id, "project.created", project.id, name=name)
        await work.notify(AccountChanged(account_id))
    return project
