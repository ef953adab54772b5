"""Per-request DataLoaders: a list costs one query per kind of thing, never one per item."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from strawberry.dataloader import DataLoader

from tokengate.policy import Grant
from tokengate.store import grants as grant_store
from tokengate.store import projects as project_store
from tokengate.store.projects import Project


class Loaders:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.projects: DataLoader[str, Project | None] = DataLoader(load_fn=self._projects)
        self.user_grants: DataLoader[str, list[Grant]] = DataLoader(load_fn=self._user_grants)
        self.token_grants: DataLoader[str, list[Grant]] = DataLoader(load_fn=self._token_grants)

    async def _projects(self, ids: Sequence[str]) -> list[Project | None]:
        found = await project_store.projects_by_ids(self.pool, ids)
        return [found.get(project_id) for project_id in ids]

    async def _user_grants(self, ids: Sequence[str]) -> list[list[Grant]]:
        found = await grant_store.grants_for_users(self.pool, ids)
        return [found.get(user_id, []) for user_id in ids]

    async def _token_grants(self, ids: Sequence[str]) -> list[list[Grant]]:
        found = await grant_store.grants_for_tokens(self.pool, ids)
        return [found.get(token_id, []) for token_id in ids]
