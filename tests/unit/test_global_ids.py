"""Ids unique across types, and the migration path for the bare token ids printed before."""

from __future__ import annotations

import pytest

from tokengate.core import global_ids, tokens
from tokengate.core.global_ids import GlobalId

KEY = "AbCdEfGh12345678"


def test_printed_ids_name_their_type():
    assert global_ids.service_token_id(KEY) == "stk_" + KEY
    assert global_ids.user_token_id(KEY) == "utk_" + KEY
    assert global_ids.audit_event_id(42) == "aud_42"
    assert global_ids.viewer_id("usr_" + KEY) == "vwr_usr_" + KEY
    for printed, expected in [
        ("stk_" + KEY, GlobalId("ServiceToken", KEY)),
        ("utk_" + KEY, GlobalId("UserToken", KEY)),
        ("aud_42", GlobalId("AuditEvent", "42")),
        ("acc_" + KEY, GlobalId("Account", "acc_" + KEY)),  # these rows are keyed by the prefixed id itself
        ("usr_" + KEY, GlobalId("User", "usr_" + KEY)),
        ("prj_" + KEY, GlobalId("Project", "prj_" + KEY)),
        ("ipr_" + KEY, GlobalId("IpRule", "ipr_" + KEY)),
        (KEY, GlobalId("Token", KEY)),  # a bare token id, as printed before the prefixes
    ]:
        assert global_ids.parse(printed) == expected, printed


def test_every_new_id_parses_to_its_type():
    for prefix, type_name in global_ids.PREFIXED_KEYS.items():
        made = tokens.new_id(prefix)
        assert global_ids.parse(made) == GlobalId(type_name, made)
    issued = tokens.issue_token("service")
    assert global_ids.parse(global_ids.service_token_id(issued.id)) == GlobalId("ServiceToken", issued.id)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "stk_",
        "stk_short",
        "stk_" + KEY + "x",
        "xyz_" + KEY,
        "aud_",
        "aud_0",
        "aud_-1",
        "aud_1e3",
        "aud_" + "9" * 20,
        "aud_٣",
        "vwr_usr_" + KEY,
        KEY[:-1],
        KEY + "!",
        "usr_" + "x" * 65,
        "usr_a-b",
        "stk_" + "é" * 16,
    ],
)
def test_anything_else_names_nothing(text):
    assert global_ids.parse(text) is None


def test_token_keys_accept_both_forms_of_their_kind_only():
    assert global_ids.token_key("stk_" + KEY, "ServiceToken") == KEY
    assert global_ids.token_key(KEY, "ServiceToken") == KEY  # the old bare form
    assert global_ids.token_key(KEY, "UserToken") == KEY
    assert global_ids.token_key("utk_" + KEY, "ServiceToken") is None
    assert global_ids.token_key("usr_" + KEY, "ServiceToken") is None
    assert global_ids.token_key("nonsense", "ServiceToken") is None


def test_audit_targets_get_the_prefix_of_their_token_kind():
    assert global_ids.audit_target_id("service_token.rotated", KEY) == "stk_" + KEY
    assert global_ids.audit_target_id("legacy_token.imported", KEY) == "stk_" + KEY
    assert global_ids.audit_target_id("user_token.created", KEY) == "utk_" + KEY
    assert global_ids.audit_target_id("user.created", "usr_" + KEY) == "usr_" + KEY
    assert global_ids.audit_target_id("ip_restrictions.updated", "acc_" + KEY) == "acc_" + KEY


def test_one_function_spells_every_actor_stored_and_printed():
    stored = global_ids.actor_name("service_token", KEY, "tgs_AbCd…", printed=False)
    assert stored == f"service_token:{KEY} (tgs_AbCd…)"  # what the audit table has always held
    assert global_ids.actor_name("service_token", KEY, printed=False) == f"service_token:{KEY}"  # the header's
    assert (
        global_ids.actor_name("service_token", KEY, "tgs_AbCd…", printed=True) == f"service_token:stk_{KEY} (tgs_AbCd…)"
    )
    assert global_ids.actor_name("user", "usr_" + KEY, printed=True) == f"user:usr_{KEY}"
    # Printing is idempotent, and leaves every other actor as it is.
    assert global_ids.printed_actor(stored) == f"service_token:stk_{KEY} (tgs_AbCd…)"
    assert global_ids.printed_actor(global_ids.printed_actor(stored)) == global_ids.printed_actor(stored)
    assert global_ids.printed_actor(f"service_token:{KEY}") == f"service_token:stk_{KEY}"
    for other in (f"user:usr_{KEY}", "cli", "anonymous", "tokengate", "github_secret_scanning", "service_token:x"):
        assert global_ids.printed_actor(other) == other


@pytest.mark.parametrize(
    "given",
    [
        f"service_token:stk_{KEY}",
        f"service_token:{KEY}",
        f"service_token:stk_{KEY} (tgs_AbCd…)",
        f"service_token:{KEY} (tgs_AbCd…)",
    ],
)
def test_the_audit_filter_takes_an_actor_printed_or_bare_and_compares_the_stored_form(given):
    assert global_ids.stored_actor(given) == f"service_token:{KEY}"


@pytest.mark.parametrize(
    "given", [f"user:usr_{KEY}", "cli", f"service_token:utk_{KEY}", f"service_token:{KEY[:-1]}", "service_token:"]
)
def test_any_other_actor_filter_is_compared_as_given(given):
    assert global_ids.stored_actor(given) == given


def test_details_print_ids_with_their_prefix_whether_recorded_bare_or_printed():
    old = {"new_token_id": KEY, "from_format": "v2", "delivery_id": "12", "new_delivery_id": "13", "event_id": "x"}
    printed = global_ids.printed_details(old)
    assert printed == {
        "new_token_id": "stk_" + KEY,
        "from_format": "v2",
        "delivery_id": "whd_12",
        "new_delivery_id": "whd_13",
        "event_id": "x",
    }
    assert global_ids.printed_details(printed) == printed
    untouched = {"name": KEY, "grants": ["JOB_ADMIN"], "new_token_id": None}
    assert global_ids.printed_details(untouched) is untouched
