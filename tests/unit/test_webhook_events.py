"""Event names, the CloudEvents body, the signature, the sealed secret and the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tokengate.config import parse_secret_keys
from tokengate.core.errors import InvalidInput
from tokengate.core.policy import SERVICE_TOKEN, Grant, Principal
from tokengate.core.webhook_events import (
    READ_OF_FAMILY,
    checked_event_names,
    cloud_event,
    delivery_refusal,
    new_signing_secret,
    retry_delay,
    seal_secret,
    signature_header,
    subscribed,
    subscription_refusal,
    unseal_secret,
    verify_signature,
    visible_data,
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


def test_during_a_rotation_both_signatures_are_sent_and_either_secret_verifies():
    new, old, body = new_signing_secret(), new_signing_secret(), b'{"id":"audit-2"}'
    header = signature_header(new, 1_800_000_000, body, previous=old)
    assert header.count("v1=") == 2 and header.startswith(signature_header(new, 1_800_000_000, body) + ",v1=")
    assert verify_signature(header, new, body, 1_800_000_000) and verify_signature(header, old, body, 1_800_000_000)
    assert not verify_signature(header, new_signing_secret(), body, 1_800_000_000)


def principal(*grants: Grant, projects: frozenset[str] = frozenset({"prj_1", "prj_2"})) -> Principal:
    return Principal(SERVICE_TOKEN, "t", "tgs_t…", "acc_1", "Acme", "ENTERPRISE", None, None, grants, projects)


DEVELOPER_ON_P1 = principal(Grant("DEVELOPER", False, ("prj_1",)))


@pytest.mark.parametrize(
    ("name", "needed"),
    [
        ("ip_restrictions.updated", "IP_RESTRICTIONS:READ"),
        ("token_policy.updated", "ACCOUNT_SETTINGS:READ"),
        ("service_token.*", "SERVICE_TOKENS:READ"),
        ("service_token.expiring", "SERVICE_TOKENS:READ"),
        ("legacy_token.imported", "SERVICE_TOKENS:READ"),
        ("a_later.action", "AUDIT_LOG:READ"),
    ],
)
def test_a_developer_on_one_project_may_not_subscribe_to_what_it_may_not_read(name, needed):
    refusal = subscription_refusal(DEVELOPER_ON_P1, name)
    assert refusal is not None and name in refusal and needed in refusal
    assert delivery_refusal(DEVELOPER_ON_P1, name.replace("*", "created"), None) is not None


def test_what_a_developer_on_one_project_reads_it_may_subscribe_to():
    for name in ("*", "user.*", "user_token.deleted", "webhook.*", "project.created", "project.*"):
        assert subscription_refusal(DEVELOPER_ON_P1, name) is None, name
    # A project event is read on its project only.
    assert delivery_refusal(DEVELOPER_ON_P1, "project.created", "prj_1") is None
    assert "PROJECTS:READ on project prj_2" in (delivery_refusal(DEVELOPER_ON_P1, "project.created", "prj_2") or "")
    assert delivery_refusal(DEVELOPER_ON_P1, "project.created", None) is not None
    # Nothing on any project: not even the family.
    assert subscription_refusal(principal(Grant("DEVELOPER", False, ("prj_1",)), projects=frozenset()), "project.*")


def test_every_family_is_read_with_what_graphql_needs_and_the_operator_reads_everything():
    viewer = principal(Grant("ACCOUNT_VIEWER"))
    for family, resource in READ_OF_FAMILY.items():
        assert delivery_refusal(viewer, f"{family}.created", "prj_1") is None or resource == "WEBHOOKS", family
    assert "WEBHOOKS:READ" in (delivery_refusal(viewer, "webhook.created", None) or "")
    assert subscription_refusal(None, "anything.at_all") is None and delivery_refusal(None, "x.y", None) is None


def test_the_client_address_is_shown_to_readers_of_the_audit_log_only():
    data = {"actor": "user:usr_1", "client_address": "203.0.113.7", "details": {}}
    assert visible_data(DEVELOPER_ON_P1, data) == {**data, "client_address": None}
    assert visible_data(principal(Grant("ACCOUNT_VIEWER")), data) == data
    assert visible_data(None, data) == data
