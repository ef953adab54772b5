"""The v2 token format: generation, parsing and hashing, all without I/O."""

from __future__ import annotations

import socket
import zlib
from datetime import timedelta
from unittest import mock

import pytest

from tests.conftest import last_character_changed
from tokengate.core import tokens
from tokengate.core.tokens import BASE62, MalformedToken, checksum, issue_token, parse_token

KEY = tokens.derive_key("k" * 40)


def test_issued_service_token_has_the_contract_shape():
    issued = issue_token("service")
    assert len(issued.text) == 58
    assert issued.text.startswith("tgs_")
    assert issued.text[4:20] == issued.id
    assert all(c in BASE62 for c in issued.text[4:])


def test_checksum_is_crc32_in_base62_most_significant_first_padded_to_six():
    body = "tgs_" + "A" * 16 + "b" * 32
    value = zlib.crc32(body.encode())
    digits = ""
    while value:
        value, rest = divmod(value, 62)
        digits = BASE62[rest] + digits
    assert checksum(body) == digits.rjust(6, "0")
    assert tokens.base62_fixed(0, 6) == "000000"
    assert tokens.base62_fixed(61, 6) == "00000z"
    assert tokens.base62_fixed(62, 6) == "000010"


@pytest.mark.parametrize("kind, prefix", [("service", "tgs_"), ("user", "tgu_")])
def test_token_round_trip(kind, prefix):
    issued = issue_token(kind)
    parsed = parse_token(issued.text)
    assert parsed.format == "v2"
    assert parsed.kind == kind
    assert parsed.lookup == issued.id
    assert issued.text.startswith(prefix)


def test_issued_tokens_do_not_repeat():
    assert len({issue_token("service").text for _ in range(2000)}) == 2000


VALID = issue_token("service").text
MALFORMED = {
    "bad checksum": last_character_changed(VALID),
    "bad checksum in secret": VALID[:30] + ("x" if VALID[30] != "x" else "y") + VALID[31:],
    "wrong prefix": "tgx_" + VALID[4:],
    "no prefix": VALID[4:],
    "too short": VALID[:-1],
    "too long": VALID + "0",
    "bad alphabet": VALID[:10] + "-" + VALID[11:],
    "empty": "",
    "10 kB": "tgs_" + "a" * 10_000,
    "non-ASCII": VALID[:10] + "é" + VALID[11:],
    "non-ASCII digits": VALID[:10] + "٣" + VALID[11:],
    "whitespace": VALID[:20] + " " + VALID[21:],
    "legacy with uppercase hex": "ABCDEF" + "0" * 34,
    "legacy wrong length": "a" * 39,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_tokens_are_refused_without_io(text):
    def no_io(*args, **kwargs):
        raise AssertionError("parse_token must not do I/O")

    with mock.patch.object(socket, "socket", no_io), mock.patch("builtins.open", no_io):
        with pytest.raises(MalformedToken) as refused:
            parse_token(text)
    assert text not in str(refused.value) or text == ""


def test_legacy_token_parses_with_a_short_non_secret_hint():
    secret = tokens.new_legacy_secret()
    parsed = parse_token(secret)
    assert parsed.format == "legacy"
    assert parsed.lookup == secret[:8]
    assert len(secret) == 40 and set(secret) <= set("0123456789abcdef")


def test_keyed_hash_depends_on_key_and_token():
    a, b = issue_token("service").text, issue_token("service").text
    assert tokens.hash_token(a, KEY) != tokens.hash_token(b, KEY)
    assert tokens.hash_token(a, KEY) != tokens.hash_token(a, tokens.derive_key("z" * 40))
    assert tokens.hash_matches(a, tokens.hash_token(a, KEY), (KEY,))
    assert not tokens.hash_matches(b, tokens.hash_token(a, KEY), (KEY,))


def test_hash_matches_any_configured_key():
    old = tokens.derive_key("o" * 40)
    text = issue_token("service").text
    assert tokens.hash_matches(text, tokens.hash_token(text, old), (KEY, old))


def test_repr_never_shows_the_secret():
    issued = issue_token("service")
    assert issued.text not in repr(issued)
    assert issued.text not in repr(parse_token(issued.text))


def test_display_prefix_is_the_non_secret_start():
    issued = issue_token("service")
    assert tokens.display_prefix(issued.text) == issued.text[:8] + "…"
    assert tokens.display_prefix_for("service", "v2", issued.id) == issued.text[:8] + "…"


def test_random_base62_is_roughly_uniform():
    sample = tokens.random_base62(62 * 400)
    counts = {c: sample.count(c) for c in BASE62}
    assert min(counts.values()) > 250 and max(counts.values()) < 560


NOW = tokens.LEGACY_CUTOFF  # any fixed moment of the application's clock


@pytest.mark.parametrize(
    ("expires_in", "age", "max_age", "serves"),
    [
        (None, 0.0, 60.0, True),  # never expires, just validated
        (1.0, 59.0, 60.0, True),
        (0.0, 0.0, 60.0, False),  # expires now: an expiry is exclusive, as in token_state and SQL
        (-1.0, 0.0, 60.0, False),  # expired (or its rotation window closed) since it was cached
        (None, 60.5, 60.0, False),  # validated too long ago for the bound in force
        (None, 299.0, 300.0, True),  # the stale bound while the database is down
        (None, 0.0, 0.0, True),
        (None, 0.1, 0.0, False),  # a bound of 0: nothing served stale
    ],
)
def test_one_rule_for_serving_a_cached_principal(expires_in, age, max_age, serves):
    expires_at = None if expires_in is None else NOW + timedelta(seconds=expires_in)
    assert tokens.may_serve_cached(expires_at, NOW, age, max_age) is serves
    if expires_at is not None:  # never more lenient than the rule of "usable"
        assert serves <= (tokens.token_state("active", expires_at, NOW) == "ACTIVE")
