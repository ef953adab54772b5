"""Which document a request runs when it names one by hash: Apollo's automatic persisted queries (APQ), and
the trusted-documents mode (``TOKENGATE_TRUSTED_DOCUMENTS``) in which only listed documents run.

APQ, as Apollo Client's persisted query link speaks it: a request sends only
``extensions.persistedQuery = {"version": 1, "sha256Hash": H}``; if this instance knows H the document runs,
else the answer is the request error ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``) and the
client sends the text with the hash, which registers it (api/documents.py ``PersistedQueries``). The
GraphQL over HTTP working group's ``documentId`` parameter names a document the same way.

Trusted documents: a hash or id names a listed document; a text runs only if it is listed, byte for byte;
nothing is ever registered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from graphql import GraphQLError

from tokengate.core.trusted_documents import TrustedDocuments, document_hash
from tokengate.graphql.engine.documents import DocumentCache
from tokengate.graphql.engine.operations import RequestErrors, RequestRefused

PERSISTED_QUERY_NOT_FOUND: Final = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_IN_LIST: Final = "PERSISTED_QUERY_NOT_IN_LIST"
APQ_VERSION: Final = 1
SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
MAX_DOCUMENT_ID_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class ResolvedDocument:
    text: str
    register_as: str | None = None  # the APQ hash to keep the text under, once the request is admitted


def request_error(message: str, code: str) -> RequestErrors:
    return RequestErrors((GraphQLError(message, extensions={"code": code}),))


def not_found() -> RequestErrors:
    # The message and code Apollo Client's persisted query link looks for before it retries with the text.
    return request_error("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)


def not_in_list() -> RequestErrors:
    return request_error(
        "PersistedQueryNotInList: this server runs only its trusted documents", PERSISTED_QUERY_NOT_IN_LIST
    )


def apq_hash(extensions: dict[str, Any] | None) -> str | None:
    """``extensions.persistedQuery.sha256Hash``, checked; None when the request names no persisted query."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict):
        raise RequestRefused(400, "extensions.persistedQuery must be an object")
    if persisted.get("version") != APQ_VERSION:
        raise RequestRefused(400, f"extensions.persistedQuery.version must be {APQ_VERSION}")
    sha256_hash = persisted.get("sha256Hash")
    if not isinstance(sha256_hash, str) or not SHA256_HEX.fullmatch(sha256_hash):
        raise RequestRefused(400, "extensions.persistedQuery.sha256Hash must be a SHA-256 in lowercase hex")
    return sha256_hash


def resolve(
    query: str | None,
    extensions: dict[str, Any] | None,
    document_id: str | None,
    documents: DocumentCache,
    trusted: TrustedDocuments | None,
) -> ResolvedDocument | RequestErrors:
    """The text to run, or the request error to answer. Raises ``RequestRefused`` for a malformed request
    (a hash that is not one, or does not match the text sent with it). The reader guarantees a query or an id."""
    sha256_hash = apq_hash(extensions)
    if document_id is not None and len(document_id) > MAX_DOCUMENT_ID_LENGTH:
        raise RequestRefused(400, f"documentId is longer than {MAX_DOCUMENT_ID_LENGTH} characters")
    if query is not None and sha256_hash is not None and document_hash(query) != sha256_hash:
        raise RequestRefused(400, "provided sha does not match query")
    wanted = document_id if document_id is not None else sha256_hash
    if trusted is not None:
        if query is not None:
            return ResolvedDocument(query) if trusted.lists(query) else not_in_list()
        assert wanted is not None
        text = trusted.text(wanted)
        return ResolvedDocument(text) if text is not None else not_found()
    if query is not None:
        return ResolvedDocument(query, sha256_hash)
    assert wanted is not None
    text = documents.persisted.text(wanted)
    return ResolvedDocument(text) if text is not None else not_found()
