"""The manifests of trusted documents: Apollo's persisted query manifest and the flat map of Hive and Relay."""

from __future__ import annotations

import json

import pytest

from tokengate.config import ConfigError, load_trusted_documents
from tokengate.core.trusted_documents import ManifestError, document_hash, parse_manifest

VIEWER = "query Viewer { viewer { id } }"


def test_apollo_manifest_lists_documents_by_id_and_by_text():
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": document_hash(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER}],
    }
    trusted = parse_manifest(json.dumps(manifest))
    assert trusted.text(document_hash(VIEWER)) == VIEWER and len(trusted) == 1
    assert trusted.lists(VIEWER) and not trusted.lists(VIEWER + " ")  # byte for byte


def test_flat_map_of_hive_and_relay():
    trusted = parse_manifest(json.dumps({"viewer-1": VIEWER, document_hash("{ __typename }"): "{ __typename }"}))
    assert trusted.text("viewer-1") == VIEWER and trusted.lists("{ __typename }") and trusted.text("nope") is None


def test_sha256_is_the_hex_apollo_sends():
    # The well-known hash of "{__typename}" (Apollo's docs use it), and sha256sum's for the spaced text.
    assert document_hash("{__typename}") == "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"
    assert document_hash("{ __typename }") == "7f56e67dd21ab3f30d1ff8b7bed08893f0a0db86449836189b361dd1e56ddb4b"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "{}",
        json.dumps({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}),
        json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "x"}]}),
        json.dumps({"x": 5}),
        json.dumps({"x": "  "}),
    ],
)
def test_a_file_that_is_no_manifest_is_refused_with_a_reason(text):
    with pytest.raises(ManifestError):
        parse_manifest(text)


def test_the_setting_names_the_file_in_its_error(tmp_path):
    assert load_trusted_documents(None) is None and load_trusted_documents("") is None
    with pytest.raises(ConfigError, match="cannot read"):
        load_trusted_documents(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError, match=r"bad\.json: the manifest lists no documents"):
        load_trusted_documents(str(bad))
