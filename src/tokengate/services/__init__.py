"""One function per change, shared by the GraphQL API and the command line.

Each validates its inputs, asks policy whether the actor may, then writes, audits and states what it makes
stale in one unit of work (unit_of_work.py). Callers only translate: resolvers turn GraphQL inputs into
arguments and the ``DomainError``s raised here into codes; the CLI turns them into one line on stderr.
"""

from tokengate.services.unit_of_work import OPERATOR, Actor, Backend, UnitOfWork

__all__ = ["OPERATOR", "Actor", "Backend", "UnitOfWork"]
