"""The trusted documents a server started with ``TOKENGATE_TRUSTED_DOCUMENTS=FILE`` runs, and nothing else. Pure.

Two manifest formats are read, the ones client build tools write:
- Apollo's persisted query manifest (``@apollo/generate-persisted-query-manifest``):
  ``{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "name", "type", "body"}]}``
- a flat map of document id to document text, as GraphQL Hive, graphql-codegen's client preset
  (``persisted-documents.json``) and Relay write: ``{"<id>": "<document>"}``.
A client names a document by its id (``extensions.persistedQuery.sha256Hash`` or ``documentId``), or sends a
text whose SHA-256 is the hash of a listed document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

APOLLO_FORMAT: Final = "apollo-persisted-query-manifest"


class ManifestError(ValueError):
    """The file is not a manifest this server reads; the message says what is wrong."""


def document_hash(text: str) -> str:
    """SHA-256 of the document's UTF-8 text in lowercase hex: the id Apollo's clients send."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TrustedDocuments:
    """Listed documents by id, and the hashes of their texts."""

    by_id: Mapping[str, str]
    hashes: frozenset[str]

    def text(self, document_id: str) -> str | None:
        return self.by_id.get(document_id)

    def lists(self, text: str) -> bool:
        """Whether ``text`` is one of the listed documents, byte for byte."""
        return document_hash(text) in self.hashes

    def __len__(self) -> int:
        return len(self.by_id)


def _apollo_operations(manifest: Mapping[str, Any]) -> dict[str, str]:
    if manifest.get("version") != 1:
        raise ManifestError(f"{APOLLO_FORMAT}: only version 1 is read")
    operations = manifest.get("operations")
    if not isinstance(operations, list):
        raise ManifestError(f"{APOLLO_FORMAT}: 'operations' must be a list")
    documents: dict[str, str] = {}
    for position, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise ManifestError(f"operation {position}: not an object")
        document_id, body = operation.get("id"), operation.get("body")
        if not isinstance(document_id, str) or not document_id or not isinstance(body, str) or not body.strip():
            raise ManifestError(f"operation {position}: needs a string 'id' and a non-empty 'body'")
        documents[document_id] = body
    return documents


def _flat_map(manifest: Mapping[str, Any]) -> dict[str, str]:
    documents: dict[str, str] = {}
    for document_id, body in manifest.items():
        if not document_id or not isinstance(body, str) or not body.strip():
            raise ManifestError(f"document {document_id!r}: the value must be the document's text")
        documents[document_id] = body
    return documents


def parse_manifest(text: str) -> TrustedDocuments:
    """The documents of a manifest's JSON text, or ``ManifestError``."""
    try:
        manifest = json.loads(text)
    except ValueError as problem:
        raise ManifestError(f"not JSON: {problem}") from None
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest must be a JSON object")
    documents = _apollo_operations(manifest) if manifest.get("format") == APOLLO_FORMAT else _flat_map(manifest)
    if not documents:
        raise ManifestError("the manifest lists no documents: no request could run")
    return TrustedDocuments(documents, frozenset(document_hash(body) for body in documents.values()))
