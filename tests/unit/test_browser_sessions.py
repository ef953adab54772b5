"""The session cookie's attributes, the CSRF rule for requests a session carries, and the passkeys' relying
party (core/browser_sessions.py)."""

from __future__ import annotations

import pytest

from tokengate.core.browser_sessions import (
    CSRF_VALUE,
    NotAHostName,
    cookie_attributes,
    csrf_refusal,
    relying_party,
    secret_hashes,
)

HOST = "localhost:8000"


def test_the_cookie_follows_the_host_prefix_rules():
    attributes = cookie_attributes(3600)
    assert attributes["secure"] is True and attributes["httponly"] is True and attributes["path"] == "/"
    assert attributes["samesite"] == "Strict" and "domain" not in attributes


def test_only_the_pages_own_requests_pass():
    assert csrf_refusal(CSRF_VALUE, "same-origin", "http://localhost:8000", HOST) is None
    assert csrf_refusal(CSRF_VALUE, None, None, HOST) is None  # no browser hints: the header decides
    assert csrf_refusal(None, "same-origin", "http://localhost:8000", HOST) is not None
    assert csrf_refusal("0", "same-origin", "http://localhost:8000", HOST) is not None
    assert csrf_refusal(CSRF_VALUE, "cross-site", None, HOST) is not None
    assert csrf_refusal(CSRF_VALUE, "same-site", None, HOST) is not None  # a sibling subdomain is another origin
    assert csrf_refusal(CSRF_VALUE, None, "https://evil.example", HOST) is not None
    assert csrf_refusal(CSRF_VALUE, None, "http://localhost:8001", HOST) is not None
    assert csrf_refusal(CSRF_VALUE, None, "null", HOST) is not None


def test_the_relying_party_is_a_host_name_never_an_address():
    party = relying_party(None, HOST)
    assert party.id == "localhost" and party.origins == ("https://localhost:8000", "http://localhost:8000")
    assert relying_party("https://tokengate.example.com", "10.0.0.1:443").id == "tokengate.example.com"
    for host in ("127.0.0.1:8000", "[::1]:8000", "", None):
        with pytest.raises(NotAHostName):
            relying_party(None, host)


def test_only_our_secrets_are_hashed():
    keys = (b"k" * 32, b"o" * 32)
    assert len(secret_hashes(keys, "A" * 43) or []) == 2
    assert secret_hashes(keys, "a b") is None and secret_hashes(keys, "é" * 43) is None
