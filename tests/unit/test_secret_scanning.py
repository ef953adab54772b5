"""GitHub's secret-scanning keys, signature and report body (secret_scanning.py)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tokengate.core.leak_reports import (
    MAX_MATCHES,
    KeysProblem,
    ReportProblem,
    feedback,
    load_public_keys,
    parse_report,
    signature_valid,
)


def public_keys_document(*keys: tuple[str, ec.EllipticCurvePrivateKey]) -> str:
    return json.dumps(
        {
            "public_keys": [
                {
                    "key_identifier": key_id,
                    "key": key.public_key()
                    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                    .decode(),
                    "is_current": True,
                }
                for key_id, key in keys
            ]
        }
    )


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


KEY = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())


def test_a_body_verifies_under_the_key_named_only():
    keys = load_public_keys(public_keys_document(("k1", KEY), ("k2", OTHER)))
    body = b'[{"token":"x","type":"t","url":"u"}]'
    assert signature_valid(keys, "k1", sign(KEY, body), body)
    assert not signature_valid(keys, "k2", sign(KEY, body), body)
    assert not signature_valid(keys, "k3", sign(KEY, body), body)
    assert not signature_valid(keys, "k1", sign(KEY, body), body + b" ")  # not re-serialised: bytes count
    assert not signature_valid(keys, "k1", "not base64!", body)
    assert not signature_valid(keys, "k1", None, body) and not signature_valid(keys, None, sign(KEY, body), body)


def test_keys_other_than_p256_are_refused():
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeysProblem):
        load_public_keys(public_keys_document(("k", p384)))
    for document in ("[]", "{}", '{"public_keys": []}', '{"public_keys": [{"key_identifier": "k"}]}', "nope"):
        with pytest.raises(KeysProblem):
            load_public_keys(document)


def test_a_report_is_a_bounded_list_of_matches():
    (match,) = parse_report(b'[{"token":"tgs_x","type":"tokengate","url":"https://github.com/a/b","source":"content"}]')
    assert (match.token, match.type, match.url) == ("tgs_x", "tokengate", "https://github.com/a/b")
    assert "tgs_x" not in repr(match)
    for body in (
        b"{}",
        b"[1]",
        b'[{"type":"t"}]',
        b"not json",
        json.dumps([{"token": "t"}] * (MAX_MATCHES + 1)).encode(),
    ):
        with pytest.raises(ReportProblem):
            parse_report(body)


def test_feedback_names_the_token_by_its_hash():
    (match,) = parse_report(b'[{"token":"tgs_secret","type":"tokengate_service_token"}]')
    assert feedback(match, True) == {
        "token_hash": hashlib.sha256(b"tgs_secret").hexdigest(),
        "token_type": "tokengate_service_token",
        "label": "true_positive",
    }
    assert feedback(match, False)["label"] == "false_positive"
