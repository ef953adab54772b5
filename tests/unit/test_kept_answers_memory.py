"""Answers kept per principal (graphql/engine/kept_answers.py) are given only to the very principal object they
were made for, and do not keep a replaced principal alive: its id, once reused, finds a dead reference."""

from __future__ import annotations

import gc
import weakref

from tests.unit.test_cache import principal
from tokengate.graphql.engine.kept_answers import KeptAnswers

BODY = b'{"query":"{ viewer { kind } }"}'
JSON = "application/json"


def test_an_answer_is_given_only_to_its_own_principal_object():
    answers = KeptAnswers()
    mine = principal("tok1")
    equal_but_another = principal("tok1")  # the same fields: what a notice's reload makes
    assert mine == equal_but_another and mine is not equal_but_another
    answers.keep(mine, JSON, BODY, {"viewer": {"kind": "SERVICE_TOKEN"}}, 3, 2, [7])
    kept = answers.get(mine, JSON, BODY)
    assert kept is not None and kept.body(None) == b'{"data":{"viewer":{"kind":"SERVICE_TOKEN"}}}'
    assert kept.grants == (7,) and (kept.requested, kept.actual) == (3, 2)
    assert answers.get(equal_but_another, JSON, BODY) is None
    assert answers.get(mine, "application/graphql-response+json", BODY) is None
    assert answers.get(mine, JSON, BODY + b" ") is None


def test_a_replaced_principal_is_not_kept_alive_by_its_answers():
    answers = KeptAnswers()
    replaced = principal("tok2")
    answers.keep(replaced, JSON, BODY, {"viewer": {"kind": "SERVICE_TOKEN"}}, 1, 1, [])
    alive = weakref.ref(replaced)
    key = next(iter(answers.answers))
    del replaced
    gc.collect()
    assert alive() is None  # nothing but the caller held it
    assert answers.answers[key].principal() is None  # a reused id finds nothing
