"""The fast door's question per request target (http/fast_forward_auth.py ``Questions``) against yarl's parse of
the same target (``request.query``, what the generic door reads), over many generated targets: percent-encoding,
'+', repeated and empty keys, case, fragments, text that is not ASCII; asked a first time (parsed) and again with
a new request for the same text (remembered)."""

from __future__ import annotations

import random

from aiohttp.test_utils import make_mocked_request

from tokengate.http.fast_forward_auth import Questions

PIECES = [
    "resource", "access", "projectId", "RESOURCE", "projectid", "JOBS", "jobs", "WRITE", "READ", "prj_abc",
    "%20", "%41", "%2B", "%26", "%3D", "%", "%zz", "+", "=", "&", ";", "#", "?", "é", "%C3%A9", "", " ", "a",
]  # fmt: skip
KEYS = ["resource", "access", "projectId", "Resource", "project%49d", "resource+", "re%73ource", ""]


def generated(count: int, seed: int = 23) -> list[str]:
    rng = random.Random(seed)
    targets = ["/auth/check", "/auth/check?", "/auth/check?resource=JOBS&access=WRITE&projectId=prj_1"]
    for _ in range(count):
        pairs = []
        for _ in range(rng.randint(0, 5)):
            key = rng.choice(KEYS)
            value = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 3)))
            pairs.append(key + rng.choice(["=", "", "=="]) + value)
        targets.append("/auth/check?" + rng.choice(["&", ";", "&&"]).join(pairs))
    return targets


def yarl_question(target: str) -> tuple[str | None, str | None, str | None]:
    query = make_mocked_request("GET", target).query
    return query.get("resource"), query.get("access"), query.get("projectId")


def test_a_remembered_question_is_what_yarl_parses_for_the_same_target() -> None:
    questions = Questions()
    targets = generated(3000)
    assert len({yarl_question(t) for t in targets}) > 100  # the generator reaches many distinct questions
    for target in targets + targets:  # parsed, then remembered
        assert questions.of(make_mocked_request("GET", target)) == yarl_question(target), target


def test_past_its_size_it_forgets_and_parses_again() -> None:
    questions = Questions(size=8)
    targets = generated(50, seed=7)
    for target in targets:
        assert questions.of(make_mocked_request("GET", target)) == yarl_question(target), target
        assert len(questions.known) <= 8
