"""The ``Node`` interface of Relay's Global Object Identification: every object with an id unique across
types (global_ids.py) implements it, and ``Query.node(id)`` finds it again (api/node_lookup.py)."""

from __future__ import annotations

import strawberry


@strawberry.interface(
    description="An object with an id unique across all types (its prefix names the type): node(id) finds it again."
)
class Node:
    id: strawberry.ID
