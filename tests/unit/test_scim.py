"""core/scim.py, pure: records, filters, PATCH, paging and projections as providers send them."""

from __future__ import annotations

import pytest

from tokengate.core import scim
from tokengate.core.scim import Equality, Record, ScimError, checked_record, parsed_filter, patched

PATCH_OP = scim.PATCH_OP


def record(**profile) -> Record:
    return Record("ada@acme.test", profile, True)


def test_the_e_mail_is_the_username_else_the_primary_else_the_first_address():
    assert record().email() == "ada@acme.test"
    emails = [{"value": "home@acme.test"}, {"value": "work@acme.test", "primary": True}]
    assert Record("ada", {"emails": emails}, True).email() == "work@acme.test"
    assert Record("ada", {"emails": emails[:1]}, True).email() == "home@acme.test"
    with pytest.raises(ScimError) as refused:
        Record("ada", {}, True).email()
    assert refused.value.scim_type == "invalidValue"


def test_attribute_names_are_case_insensitive_and_may_carry_the_schema_urn():
    got = checked_record(
        {"USERNAME": "a@b.io", f"{scim.USER_SCHEMA}:displayName": "A", "Active": "False", "unknown": 1, "id": "x"}
    )
    assert got == Record("a@b.io", {"displayName": "A"}, False)


def test_filters_providers_send_and_the_rest_refused():
    assert parsed_filter('userName eq "Ada@Acme.test"') == Equality("userName", "Ada@Acme.test")
    assert parsed_filter('externalId EQ "00u1\\"x"') == Equality("externalId", '00u1"x')
    assert parsed_filter(f'{scim.USER_SCHEMA}:userName eq "a"') == Equality("userName", "a")
    assert parsed_filter(None) is None and parsed_filter("  ") is None
    for text in ('userName co "a"', 'userName eq "a" and active eq true', "userName pr", 'title eq "x"', "eq"):
        with pytest.raises(ScimError) as refused:
            parsed_filter(text)
        assert refused.value.status == 400 and refused.value.scim_type == "invalidFilter"


def test_patch_as_okta_and_entra_id_send_it():
    okta = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert patched(record(), okta).active is False
    entra = {
        "schemas": [PATCH_OP],
        "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "w@acme.test"},
            {"op": "Replace", "path": "name.familyName", "value": "Lovelace"},
            {"op": "Add", "path": "externalId", "value": "ada"},
        ],
    }
    got = patched(record(name={"givenName": "Ada"}), entra)
    assert got == Record(
        "ada@acme.test",
        {
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "w@acme.test", "type": "work"}],
            "externalId": "ada",
        },
        False,
    )
    again = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "n@acme.test"}],
    }
    assert patched(got, again).profile["emails"] == [{"value": "n@acme.test", "type": "work"}]
    removed = {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": 'emails[type eq "work"]'}]}
    assert "emails" not in patched(got, removed).profile


def test_patch_refusals():
    cases = [
        ({"Operations": [{"op": "add", "path": "x", "value": 1}]}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": []}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "active"}]}, "mutability"),
        ({"schemas": [PATCH_OP], "Operations": [{"op": "remove"}]}, "noTarget"),
        ({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "name.middle", "value": "x"}]}, "invalidPath"),
        (
            {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": 'name[type eq "x"]', "value": "x"}]},
            "invalidPath",
        ),
        (
            {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": "maybe"}]},
            "invalidValue",
        ),
    ]
    for body, scim_type in cases:
        with pytest.raises(ScimError) as refused:
            patched(record(), body)
        assert refused.value.scim_type == scim_type, body


def test_paging_and_projections():
    assert scim.paging(None, None) == (1, scim.MAX_RESULTS)
    assert scim.paging("0", "-5") == (1, 0)
    assert scim.paging("9" * 30, "9" * 30) == (scim.MAX_START_INDEX, scim.MAX_RESULTS)
    document = {
        "schemas": [scim.USER_SCHEMA],
        "id": "usr_x",
        "userName": "a",
        "name": {"givenName": "A", "familyName": "B"},
    }
    only = scim.projection("name.givenName", None)
    assert only is not None and only.apply(document) == {
        "schemas": [scim.USER_SCHEMA],
        "id": "usr_x",
        "name": {"givenName": "A"},
    }
    without = scim.projection(None, "userName,id")
    assert without is not None and without.apply(document) == {
        "schemas": [scim.USER_SCHEMA],
        "id": "usr_x",
        "name": {"givenName": "A", "familyName": "B"},
    }
    with pytest.raises(ScimError):
        scim.projection("a", "b")
