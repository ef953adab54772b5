"""Event names, the CloudEvents body, the signature, the sealed secret and the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tokengate.config import parse_secret_keys
from tokengate.errors import InvalidInput
from tokengate.webhook_events import (
    checked_event_names,
    cloud_event,
    new_signing_secret,
    retry_delay,
    seal_secret,
    signature_header,
    subscribed,
    unseal_secret,
    verify_signature,
)

OLD, NEW = parse_secret_keys("old-key-0123456789-abcdefghijklmnopqrstuvwxyz,new-key-0123456789-abcdefghijklmnopqrstu")


def test_subscriptions_are_types_families_or_everything():
    assert checked_event_names(["service_token.created", "user.*", "*", "user.*"]) == (
        "service_token.created",
        "user.*",
        "*",
    )
    for bad in ([], ["Service.Created"], ["service_token"], ["service_*"], ["*.created"], ["a.b " * 40]):
        with pytest.raises(InvalidInput):
            checked_event_names(bad)


def test_an_action_added_later_is_matched_by_its_family_and_by_everything():
    assert subscribed(["user.*"], "user.deactivated") and subscribed(["*"], "token_policy.updated")
    assert subscribed(["user.deactivated"], "user.deactivated")
    assert not subscribed(["user.created"], "user.deactivated") and not subscribed(["user_token.*"], "user.updated")


def test_the_body_is_a_cloud_event():
    when = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    body = cloud_event(
        event_id="audit-7",
        event_type="project.created",
        account_id="acc_1",
        subject="prj_1",
        time=when,
        data={"actor": "cli"},
    )
    assert json.loads(body) == {
        "specversion": "1.0",
        "id": "audit-7",
        "source": "/accounts/acc_1",
        "type": "project.created",
        "time": "2026-12-01T10:00:00Z",
        "datacontenttype": "application/json",
        "subject": "prj_1",
        "data": {"actor": "cli"},
    }


def test_a_signature_verifies_for_its_body_secret_and_time_only():
    secret, body = new_signing_secret(), b'{"id":"audit-1"}'
    header = signature_header(secret, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(header, secret, body, 1_800_000_100)
    assert not verify_signature(header, secret, body + b" ", 1_800_000_100)
    assert not verify_signature(header, new_signing_secret(), body, 1_800_000_100)
    assert not verify_signature(header, secret, body, 1_800_000_301)  # replayed after the tolerance
    assert not verify_signature("v1=" + header.split("v1=")[1], secret, body, 1_800_000_000)
    assert not verify_signature("garbage", secret, body, 1_800_000_000)


def test_the_secret_is_sealed_under_the_server_key_and_opens_under_it_only():
    secret = new_signing_secret()
    sealed, key_id = seal_secret(secret, OLD)
    assert secret.encode() not in sealed
    assert unseal_secret(sealed, key_id, (NEW, OLD)) == secret  # during a key rotation
    assert unseal_secret(sealed, key_id, (NEW,)) is None  # the old key removed
    assert unseal_secret(sealed[:-1] + bytes([sealed[-1] ^ 1]), key_id, (OLD,)) is None  # tampered
    assert seal_secret(secret, OLD)[0] != sealed  # a fresh nonce every time


def test_retries_double_up_to_the_cap():
    assert [retry_delay(n, 10, 3600, 0.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert retry_delay(30, 10, 3600, 0.0) == 3600 and retry_delay(10_000, 10, 3600, 0.0) == 3600
    assert retry_delay(1, 10, 3600, 1.0) == pytest.approx(8.0)
