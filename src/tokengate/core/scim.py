"""SCIM 2.0 (RFC 7643 schemas, RFC 7644 protocol) for members: the documents, the User resource, filters and
PATCH. Pure, no I/O: http/scim.py reads and answers, services/scim.py changes members.

A member's SCIM record is what the identity provider sent, of the attributes published here: ``userName``,
``name`` (givenName, familyName, formatted), ``displayName``, ``emails`` (value, type, primary), ``externalId``
and ``active``. Attribute names are case-insensitive (RFC 7643 2.1); what is stored and answered uses the
schema's spelling. Anything this module refuses raises ``ScimError`` with the status and ``scimType`` RFC 7644
3.12 gives it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

USER_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_RESPONSE: Final = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP: Final = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR: Final = "urn:ietf:params:scim:api:messages:2.0:Error"
SCHEMA_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:Schema"
RESOURCE_TYPE_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SERVICE_PROVIDER_CONFIG_SCHEMA: Final = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
MEDIA_TYPE: Final = "application/scim+json"
MAX_RESULTS: Final = 200  # the most members one page holds (ServiceProviderConfig filter.maxResults)
MAX_OPERATIONS: Final = 100  # PATCH operations in one request
MAX_TEXT: Final = 320  # characters of userName and of any other text attribute
MAX_EMAILS: Final = 20
MAX_START_INDEX: Final = 2**31 - 1


class ScimError(Exception):
    """A request SCIM refuses: ``status`` (400, 404, 409, …) and ``scim_type`` (RFC 7644 table 9) or None."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def invalid_value(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def error_document(error: ScimError) -> dict[str, Any]:
    document: dict[str, Any] = {"schemas": [ERROR], "status": str(error.status), "detail": error.detail}
    if error.scim_type is not None:
        document["scimType"] = error.scim_type
    return document


# The User schema this server publishes (RFC 7643 4.1, the attributes it keeps).


def _attribute(name: str, description: str, **overrides: Any) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name,
        "type": "string",
        "multiValued": False,
        "description": description,
        "required": False,
        "caseExact": False,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }
    attribute.update(overrides)
    return attribute


NAME_PARTS: Final = ("givenName", "familyName", "formatted")
EMAIL_PARTS: Final = ("value", "type", "primary")
USER_ATTRIBUTES: Final = [
    _attribute(
        "userName",
        "Unique in the account (case-insensitive). The member's e-mail when it is an e-mail address.",
        required=True,
        uniqueness="server",
    ),
    _attribute(
        "name",
        "The member's name.",
        type="complex",
        subAttributes=[
            _attribute("givenName", "Given name."),
            _attribute("familyName", "Family name."),
            _attribute("formatted", "The full name, formatted for display."),
        ],
    ),
    _attribute("displayName", "The name shown for the member."),
    _attribute(
        "emails",
        "E-mail addresses; the member's e-mail is userName when that is one, else the primary (or first) value.",
        type="complex",
        multiValued=True,
        required=True,
        subAttributes=[
            _attribute("value", "An e-mail address.", required=True),
            _attribute("type", "work, home or other.", canonicalValues=["work", "home", "other"]),
            _attribute("primary", "The preferred address.", type="boolean"),
        ],
    ),
    _attribute(
        "active",
        "false deactivates the member (its personal tokens stop at once); true switches it on again. Every "
        "member is either, so it cannot be removed.",
        type="boolean",
        required=True,
    ),
]
USER_SCHEMA_DOCUMENT: Final = {
    "schemas": [SCHEMA_SCHEMA],
    "id": USER_SCHEMA,
    "name": "User",
    "description": "A member of the account",
    "attributes": USER_ATTRIBUTES,
}


def _meta_schemas() -> list[dict[str, Any]]:
    """RFC 7643 section 5-7's schemas of the discovery documents, as scim2-models 0.12 writes them."""
    text = resources.files("tokengate.reference").joinpath("scim-meta-schemas.json").read_text("utf-8")
    documents: list[dict[str, Any]] = json.loads(text)
    return documents


def schemas(base: str) -> list[dict[str, Any]]:
    """Every schema /Schemas publishes, each with its location under ``base`` (the /scim/v2 URL)."""
    published = [USER_SCHEMA_DOCUMENT, *_meta_schemas()]
    return [
        {**schema, "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{schema['id']}"}}
        for schema in published
    ]


def resource_types(base: str) -> list[dict[str, Any]]:
    return [
        {
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "Members of the account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [],
            "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
        }
    ]


def service_provider_config(base: str, documentation: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "SCIM token",
                "description": "Authorization: Bearer tgp_…, a SCIM token an account admin created",
                "primary": True,
            }
        ],
        "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base}/ServiceProviderConfig"},
    }
    if documentation:
        config["documentationUri"] = documentation
    return config


# A member's record: validated from what the provider sent (POST, PUT, or the result of a PATCH).

_CANONICAL: Final = {
    name.lower(): name for name in ("userName", "name", "displayName", "emails", "externalId", "active")
}
_READ_ONLY: Final = frozenset(("id", "meta", "schemas", "groups"))
_USER_PREFIX: Final = USER_SCHEMA.lower() + ":"


@dataclass(frozen=True, slots=True)
class Record:
    """What the provider keeps of a member. ``active`` None: not said (a PUT keeps the state as it is)."""

    user_name: str
    profile: dict[str, Any] = field(default_factory=dict)  # name, displayName, emails, externalId
    active: bool | None = None

    def email(self) -> str:
        """The member's e-mail: userName when it is an address, else the primary (or first) of ``emails``."""
        if looks_like_email(self.user_name):
            return self.user_name
        emails: list[dict[str, Any]] = self.profile.get("emails", [])
        ordered = sorted(emails, key=lambda email: not email.get("primary", False))
        for email in ordered:
            if looks_like_email(email["value"]):
                return str(email["value"])
        raise invalid_value("a member needs an e-mail: send a userName that is an e-mail address, or emails")

    def as_raw(self) -> dict[str, Any]:
        """The record as attributes again (what PATCH starts from)."""
        raw: dict[str, Any] = {"userName": self.user_name, **self.profile}
        if self.active is not None:
            raw["active"] = self.active
        return raw


def looks_like_email(value: str) -> bool:
    """core/validation.py's rule for an e-mail (an @, a dot in the domain, no spaces, at most 320 characters)."""
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain and len(value) <= MAX_TEXT and not any(c.isspace() for c in value))


def storable(value: str) -> bool:
    """Text PostgreSQL can keep: no NUL character, no lone surrogate (which UTF-8 cannot encode)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(f"{what} must be a non-empty string")
    if not storable(value):
        raise invalid_value(f"{what} holds a character that is not text (NUL, or a lone surrogate)")
    if len(value) > MAX_TEXT:
        raise invalid_value(f"{what} must be at most {MAX_TEXT} characters")
    return value


def _boolean(value: Any, what: str) -> bool:
    """A boolean; the strings "true"/"false" too, as Entra ID sends ``active`` in PATCH."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid_value(f"{what} must be true or false")


def _keyed(value: Any, what: str) -> dict[str, Any]:
    """A JSON object with its keys in lower case (attribute names are case-insensitive)."""
    if not isinstance(value, Mapping):
        raise invalid_value(f"{what} must be an object")
    return {str(key).lower(): item for key, item in value.items()}


def _name(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    given = _keyed(value, "name")
    name = {
        part: _text(given[part.lower()], f"name.{part}") for part in NAME_PARTS if given.get(part.lower()) is not None
    }
    return name or None


def _emails(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise invalid_value("emails must be a list")
    if len(value) > MAX_EMAILS:
        raise invalid_value(f"at most {MAX_EMAILS} emails")
    emails: list[dict[str, Any]] = []
    for item in value:
        given = _keyed(item, "an emails item")
        email: dict[str, Any] = {"value": _text(given.get("value"), "emails.value")}
        if given.get("type") is not None:
            email["type"] = _text(given["type"], "emails.type")
        if given.get("primary") is not None:
            email["primary"] = _boolean(given["primary"], "emails.primary")
        emails.append(email)
    if sum(1 for email in emails if email.get("primary")) > 1:
        raise invalid_value("at most one of emails may be primary")
    return emails or None


def _attribute_key(name: str) -> str:
    """A top-level attribute's lower-case name, without the User schema's URN."""
    lowered = name.lower()
    return lowered[len(_USER_PREFIX) :] if lowered.startswith(_USER_PREFIX) else lowered


def checked_record(raw: Any) -> Record:
    """A member's record from a resource document (POST, PUT; a PATCH's result), or ``ScimError`` (400)."""
    if not isinstance(raw, Mapping):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    given = {_attribute_key(str(key)): value for key, value in raw.items()}
    schemas_given = given.get("schemas")
    if schemas_given is not None and (
        not isinstance(schemas_given, list) or USER_SCHEMA.lower() not in [str(s).lower() for s in schemas_given]
    ):
        raise ScimError(400, f"schemas must list {USER_SCHEMA}", "invalidSyntax")
    if given.get("username") is None:
        raise invalid_value("userName is required")
    user_name = _text(given["username"], "userName").strip()
    profile: dict[str, Any] = {}
    name = _name(given.get("name"))
    if name:
        profile["name"] = name
    for key in ("displayName", "externalId"):
        if given.get(key.lower()) is not None:
            profile[key] = _text(given[key.lower()], key)
    emails = _emails(given.get("emails"))
    if emails:
        profile["emails"] = emails
    active = _boolean(given["active"], "active") if given.get("active") is not None else None
    return Record(user_name, profile, active)


# Answers.


def resource(
    member_id: str, record: Record, created: str, base: str, attributes: Projection | None = None
) -> dict[str, Any]:
    """A member as a User resource (RFC 7643 4.1), cut to what ``attributes`` asks for."""
    document: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": member_id, **record.as_raw()}
    document["meta"] = {
        "resourceType": "User",
        "created": created,
        "lastModified": created,
        "location": f"{base}/Users/{member_id}",
    }
    return attributes.apply(document) if attributes is not None else document


def list_response(resources_: Sequence[dict[str, Any]], total: int, start_index: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources_),
        "Resources": list(resources_),
    }


_ALWAYS: Final = frozenset(("id", "schemas"))  # returned "always" (RFC 7643 7): never cut


@dataclass(frozen=True, slots=True)
class Projection:
    """``attributes`` or ``excludedAttributes`` (RFC 7644 3.4.2.5): top-level names, or ``name.sub``."""

    names: frozenset[str]
    excluded: bool

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in document.items():
            lowered = key.lower()
            if lowered in _ALWAYS:
                out[key] = value
                continue
            subs = {name.split(".", 1)[1] for name in self.names if name.startswith(lowered + ".")}
            if self.excluded:
                if lowered in self.names:
                    continue
                if subs and isinstance(value, dict):
                    value = {k: v for k, v in value.items() if k.lower() not in subs}
                out[key] = value
            elif lowered in self.names:
                out[key] = value
            elif subs and isinstance(value, dict):
                out[key] = {k: v for k, v in value.items() if k.lower() in subs}
        return out


def projection(attributes: str | None, excluded: str | None) -> Projection | None:
    if attributes and excluded:
        raise invalid_value("attributes and excludedAttributes are mutually exclusive")
    given = attributes or excluded
    if not given:
        return None
    names = frozenset(_attribute_key(name.strip()) for name in given.split(",") if name.strip())
    return Projection(names, excluded=bool(excluded))


def paging(start_index: str | None, count: str | None) -> tuple[int, int]:
    """``startIndex`` (1-based; less than 1 is 1) and ``count`` (0 to MAX_RESULTS; default MAX_RESULTS)."""

    def number(value: str | None, what: str, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise invalid_value(f"{what} must be an integer") from None

    # Past MAX_START_INDEX nothing is found either; the bound keeps the number a database integer.
    start = min(MAX_START_INDEX, max(1, number(start_index, "startIndex", 1)))
    return start, min(MAX_RESULTS, max(0, number(count, "count", MAX_RESULTS)))


# Filters: the forms providers send to find a member (Okta and Entra ID: ``userName eq "…"``; Entra ID also
# ``externalId eq "…"``), and ``id eq``. Anything else is refused as invalidFilter, never misread.

_FILTER: Final = re.compile(r'\s*([A-Za-z][A-Za-z0-9_.:$-]*)\s+(eq)\s+("(?:[^"\\]|\\.)*")\s*', re.IGNORECASE)
FILTERABLE: Final = {"username": "userName", "externalid": "externalId", "id": "id", "emails.value": "emails.value"}


@dataclass(frozen=True, slots=True)
class Equality:
    attribute: str  # one of FILTERABLE's values
    value: str


def parsed_filter(text: str | None) -> Equality | None:
    if text is None or not text.strip():
        return None
    match = _FILTER.fullmatch(text)
    if match is None:
        raise ScimError(
            400,
            'unsupported filter: this server answers attribute eq "value" for userName, externalId, id or emails.value',
            "invalidFilter",
        )
    attribute = FILTERABLE.get(_attribute_key(match.group(1)))
    if attribute is None:
        raise ScimError(
            400,
            f"cannot filter on {match.group(1)[:64]}: use userName, externalId, id or emails.value",
            "invalidFilter",
        )
    try:
        value = json.loads(match.group(3))
    except ValueError:
        raise ScimError(400, "the filter's value is not a valid string", "invalidFilter") from None
    if not storable(value):
        raise ScimError(400, "the filter's value holds a character that is not text", "invalidFilter")
    return Equality(attribute, value)


# PATCH (RFC 7644 3.5.2) on a record's attributes.

_PATH: Final = re.compile(
    r'([A-Za-z][A-Za-z0-9_$-]*)(?:\[\s*([A-Za-z][A-Za-z0-9_$-]*)\s+eq\s+("(?:[^"\\]|\\.)*"|true|false)\s*\])?(?:\.([A-Za-z][A-Za-z0-9_$-]*))?',
    re.IGNORECASE,
)
_REQUIRED: Final = frozenset(("username", "active", "emails"))


@dataclass(frozen=True, slots=True)
class Target:
    attribute: str  # canonical top-level name
    sub: str | None  # canonical sub-attribute, or None
    where: tuple[str, Any] | None  # emails[<sub> eq <value>]


def _target(path: str) -> Target:
    match = _PATH.fullmatch(_attribute_key(path.strip()))
    if match is None:
        raise ScimError(400, f"unsupported path {path[:64]!r}", "invalidPath")
    attribute = _CANONICAL.get(match.group(1).lower())
    if attribute is None:
        raise ScimError(
            400, f"no attribute {match.group(1)[:64]!r} in the User schema this server publishes", "invalidPath"
        )
    parts = {"name": NAME_PARTS, "emails": EMAIL_PARTS}.get(attribute, ())
    canonical_parts = {part.lower(): part for part in parts}

    def part(name: str | None) -> str | None:
        if name is None:
            return None
        found = canonical_parts.get(name.lower())
        if found is None:
            raise ScimError(400, f"no sub-attribute {name[:64]!r} of {attribute}", "invalidPath")
        return found

    where = None
    if match.group(2) is not None:
        if attribute != "emails":
            raise ScimError(400, "a value filter in a path is supported on emails only", "invalidPath")
        literal = match.group(3)
        try:
            wanted: Any = literal.lower() == "true" if literal.lower() in ("true", "false") else json.loads(literal)
        except ValueError:
            raise ScimError(400, "the value filter's value is not a valid string", "invalidPath") from None
        where = (str(part(match.group(2))), wanted)
    return Target(attribute, part(match.group(4)), where)


def _matches(item: Mapping[str, Any], where: tuple[str, Any]) -> bool:
    key, wanted = where
    found = item.get(key)
    if isinstance(found, str) and isinstance(wanted, str):
        return found.lower() == wanted.lower()
    return bool(found == wanted)


def _apply(raw: dict[str, Any], op: str, target: Target, value: Any) -> None:
    attribute = target.attribute
    if op == "remove" and target.attribute.lower() in _REQUIRED and target.sub is None and target.where is None:
        raise ScimError(400, f"{attribute} is required: it can be replaced, not removed", "mutability")
    if attribute == "emails" and (target.where is not None or target.sub is not None):
        emails = [dict(item) for item in raw.get("emails") or []]
        chosen = [item for item in emails if target.where is None or _matches(item, target.where)]
        if op == "remove":
            if target.sub is None:
                emails = [item for item in emails if item not in chosen]
            else:
                for item in chosen:
                    item.pop(target.sub, None)
        else:
            if target.sub is None:
                raise invalid_value('give the sub-attribute to set, e.g. emails[type eq "work"].value')
            if not chosen and target.where is not None:  # Entra ID adds a work address so
                chosen = [{target.where[0]: target.where[1]}]
                emails.append(chosen[0])
            for item in chosen:
                item[target.sub] = value
        raw["emails"] = emails
        return
    if target.sub is not None:  # name.givenName
        whole = dict(raw.get(attribute) or {})
        if op == "remove":
            whole.pop(target.sub, None)
        else:
            whole[target.sub] = value
        raw[attribute] = whole
        return
    if op == "remove":
        raw.pop(attribute, None)
    elif attribute == "emails" and op == "add":
        raw["emails"] = [*(raw.get("emails") or []), *(value if isinstance(value, list) else [value])]
    elif attribute == "name" and op == "add" and isinstance(value, Mapping):
        raw["name"] = {**(raw.get("name") or {}), **value}
    else:
        raw[attribute] = value


def patched(record: Record, body: Any) -> Record:
    """``record`` after a PatchOp (RFC 7644 3.5.2), validated as a whole; ``ScimError`` for anything refused."""
    if not isinstance(body, Mapping):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    given = {str(key).lower(): value for key, value in body.items()}
    if PATCH_OP.lower() not in [str(s).lower() for s in given.get("schemas") or []]:
        raise ScimError(400, f"schemas must list {PATCH_OP}", "invalidSyntax")
    operations = given.get("operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty list", "invalidSyntax")
    if len(operations) > MAX_OPERATIONS:
        raise ScimError(400, f"at most {MAX_OPERATIONS} Operations", "tooMany")
    # Each step starts from a valid record (checked_record after every change): what an operation finds at its
    # path is always of the schema's type, whatever an earlier operation of the request set.
    current = record
    for operation in operations:
        fields = _keyed(operation, "an operation")
        op = str(fields.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise invalid_value("op must be add, replace or remove")
        path = fields.get("path")
        value = fields.get("value")
        if path is not None:
            if not isinstance(path, str):
                raise ScimError(400, "path must be a string", "invalidPath")
            current = _step(current, op, _target(path), value)
        elif op == "remove":
            raise ScimError(400, "remove needs a path", "noTarget")
        else:  # no path: the value's attributes, each as a path (Okta: {"active": false})
            for key, item in _keyed(value, "the value of an operation without a path").items():
                current = _step(current, op, _target(key), item)
    return current


def _step(record: Record, op: str, target: Target, value: Any) -> Record:
    raw = record.as_raw()
    _apply(raw, op, target, value)
    return checked_record(raw)
