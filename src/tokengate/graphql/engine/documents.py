"""GraphQL documents, parsed once under the token limit and validated once, whoever sends them.

A request's query text becomes a ``Document`` (cached by text). Nobody can make the server lex a megabyte:
a document is at most ``MAX_DOCUMENT_LENGTH`` characters and its parse stops at ``MAX_TOKENS`` tokens; a
request without credentials gets far less (``ANONYMOUS_MAX_LENGTH``, ``ANONYMOUS_MAX_TOKENS``: about three
times what the full introspection query needs), so its refusal costs a few milliseconds at most. What the
anonymous-access rule needs (which root fields each operation selects) is read from that one parse;
validation runs only for requests that got past the gate, once per document.

A new text longer than ``INLINE_PARSE_LENGTH`` is parsed, and a new document of more than
``INLINE_VALIDATION_FIELDS`` fields and arguments validated, on the worker thread (offload.py), not on the
event loop: ``ensure_parsed`` and ``validated`` are what ``operations.run`` awaits.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    parse,
    specified_rules,
    validate,
    visit,
)
from graphql.validation import ASTValidationRule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from tokengate.graphql.engine.document_limits import (
    ANONYMOUS_MAX_LENGTH,
    ANONYMOUS_MAX_TOKENS,
    LIMIT_RULES,
    MAX_DOCUMENT_LENGTH,
    MAX_TOKENS,
)
from tokengate.graphql.engine.offload import WORKER

INTROSPECTION_FIELDS: Final = frozenset({"__schema", "__type", "__typename"})
# Root fields anyone may call without credentials (their resolvers never read the caller).
PUBLIC_FIELDS: Final = frozenset({"reportLeakedToken"})
VALIDATION_RULES: Final[tuple[type[ASTValidationRule], ...]] = (
    *specified_rules,
    *LIMIT_RULES,
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)
CACHE_SIZE: Final = 1024
MAX_CACHED_TEXT: Final = 16 * 1024  # longer documents are rare; parsing them each time keeps the cache small
# Automatic persisted queries: what one instance remembers (a client whose hash was forgotten sends the text again).
PERSISTED_MAX_ENTRIES: Final = 4096
PERSISTED_MAX_CHARACTERS: Final = 8 * 1024 * 1024
MAX_CACHED_CHARACTERS: Final = 512 * 1024  # all cached texts together (a few hundred thousand tree objects)
SEEN_SIZE: Final = 8192  # hashes of texts seen once, waiting for a second sighting
INLINE_PARSE_LENGTH: Final = 512  # characters: parsed on the event loop within a couple of milliseconds
INLINE_VALIDATION_FIELDS: Final = 30  # fields and arguments: validated on the event loop in about 2 ms
TOO_DEEP: Final = "the document nests fragments too deeply to be validated"
T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Document:
    """One query text: its syntax tree (or its syntax error), its operations, and validation done at most once."""

    text: str
    ast: DocumentNode | None
    syntax_errors: tuple[GraphQLError, ...] = ()
    operations: tuple[OperationDefinitionNode, ...] = ()
    _root_fields: tuple[frozenset[str] | None, ...] = ()  # per operation; None where a fragment is missing
    _validation: dict[int, tuple[GraphQLError, ...]] = field(default_factory=dict)
    fields: int = 0  # field selections and arguments in the text: what validating it costs grows with
    parsed: bool = True  # False: waiting to be parsed off the event loop (``ensure_parsed``)
    _pending: dict[object, asyncio.Future[object]] = field(default_factory=dict)  # work under way, shared
    costs: dict[str | None, int] = field(default_factory=dict)  # by operation name, of operations without variables
    actual_plans: dict[str | None, Any] = field(default_factory=dict)  # by operation name: cost.actual_plan
    principal_only: dict[str | None, bool] = field(default_factory=dict)  # by operation name: kept_answers.py

    @classmethod
    def unparsed(cls, text: str) -> Document:
        return cls(text, None, parsed=False)

    def selects_only(self, allowed: frozenset[str]) -> bool:
        """True when every operation selects nothing but ``allowed`` at its root (fragments followed)."""
        return bool(self.operations) and all(fields is not None and fields <= allowed for fields in self._root_fields)

    def is_public(self, public_introspection: bool) -> bool:
        """May this document run without credentials? Introspection only (when the schema is public), or
        only the fields anyone may call."""
        return (public_introspection and self.selects_only(INTROSPECTION_FIELDS)) or self.selects_only(PUBLIC_FIELDS)

    def validation_errors(self, schema: GraphQLSchema) -> tuple[GraphQLError, ...]:
        """Validation against ``schema``, once per schema; client mistakes only (see ``as_client_error``)."""
        assert self.ast is not None
        key = id(schema)
        errors = self._validation.get(key)
        if errors is None:
            errors = self._validation[key] = validation_of(schema, self.ast)
        return errors

    def is_validated(self, schema: GraphQLSchema) -> bool:
        return id(schema) in self._validation

    async def validated(self, schema: GraphQLSchema) -> tuple[GraphQLError, ...]:
        """``validation_errors``, on the worker thread when the document is large and not validated yet."""
        assert self.ast is not None
        errors = self._validation.get(id(schema))
        if errors is not None or self.fields <= INLINE_VALIDATION_FIELDS:
            return errors if errors is not None else self.validation_errors(schema)
        errors = await self._shared(id(schema), validation_of, schema, self.ast)
        self._validation[id(schema)] = errors
        return errors

    async def ensure_parsed(self) -> None:
        """Parse a text left for the worker (long and new), once however many requests wait for it."""
        if not self.parsed:
            prepared = await self._shared("parse", _prepared, self.text, MAX_DOCUMENT_LENGTH, MAX_TOKENS)
            self.ast, self.syntax_errors, self.operations = prepared.ast, prepared.syntax_errors, prepared.operations
            self._root_fields, self.fields, self.parsed = prepared._root_fields, prepared.fields, True

    async def _shared(self, key: object, function: Callable[..., T], *args: object) -> T:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = asyncio.ensure_future(WORKER.run(function, *args))
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)  # type: ignore[return-value]

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        """The operation to run: the named one, or the only one; None when that is ambiguous or unknown."""
        if name is None:
            return self.operations[0] if len(self.operations) == 1 else None
        return next((op for op in self.operations if op.name is not None and op.name.value == name), None)


def as_client_error(error: GraphQLError) -> GraphQLError:
    """A validation error is the client's even when a rule's code raised while reading the document (an Int
    literal of 5000 digits makes ``int()`` raise): drop the cause so it is not masked as a server error."""
    if error.original_error is None:
        return error
    return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path)


def validation_of(schema: GraphQLSchema, ast: DocumentNode) -> tuple[GraphQLError, ...]:
    try:
        return tuple(as_client_error(error) for error in validate(schema, ast, VALIDATION_RULES))
    except RecursionError:  # a chain of hundreds of fragments spread into each other
        return (GraphQLError(TOO_DEEP),)


def count_fields(ast: DocumentNode) -> int:
    """Field selections anywhere in the document (operations and fragments), and their arguments: what the
    validation rules walk."""
    count = 0
    stack: list[SelectionSetNode] = [d.selection_set for d in ast.definitions if hasattr(d, "selection_set")]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                count += 1 + len(selection.arguments or ())
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                stack.append(inner)
    return count


def _root_fields(
    selection_set: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode], seen: frozenset[str]
) -> frozenset[str] | None:
    names: set[str] = set()
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
            continue
        if isinstance(selection, InlineFragmentNode):
            inner = _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                return None
            inner = _root_fields(fragments[name].selection_set, fragments, seen | {name})
        else:
            return None
        if inner is None:
            return None
        names |= inner
    return frozenset(names)


# An Int is 32 bits (10 digits); past Python's 4300-digit limit int() itself fails with a hint about
# sys.set_int_max_str_digits that validation would echo, with the whole literal.
MAX_INT_DIGITS: Final = 20
OVERSIZED_INT_MESSAGE: Final = f"an Int literal has more than {MAX_INT_DIGITS} digits: Int is a 32-bit integer"
_LONG_DIGIT_RUN: Final = re.compile("[0-9]{" + str(MAX_INT_DIGITS + 1) + "}")


class _OversizedInt(Visitor):
    found = False

    def enter_int_value(self, node: IntValueNode, *_: object) -> object:
        if len(node.value.lstrip("-")) > MAX_INT_DIGITS:
            self.found = True
            return BREAK
        return None


def has_oversized_int(text: str, ast: DocumentNode) -> bool:
    """An Int literal too long for any Int (the walk runs only when the text has such a run of digits)."""
    if _LONG_DIGIT_RUN.search(text) is None:
        return False
    visitor = _OversizedInt()
    visit(ast, visitor)
    return visitor.found


def _prepared(text: str, max_length: int, max_tokens: int) -> Document:
    if len(text) > max_length:
        return Document(
            text, None, syntax_errors=(GraphQLError(f"the document is longer than {max_length} characters"),)
        )
    try:
        ast = parse(text, max_tokens=max_tokens)
    except GraphQLError as error:
        return Document(text, None, syntax_errors=(error,))
    if has_oversized_int(text, ast):
        return Document(text, None, syntax_errors=(GraphQLError(OVERSIZED_INT_MESSAGE),))
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = tuple(d for d in ast.definitions if isinstance(d, OperationDefinitionNode))
    roots = tuple(_root_fields(op.selection_set, fragments, frozenset()) for op in operations)
    return Document(text, ast, operations=operations, _root_fields=roots, fields=count_fields(ast))


class PersistedQueries:
    """Apollo's automatic persisted queries: document texts by SHA-256 hash, least recently used forgotten
    first, bounded in entries and in characters. Only requests that got past the gate register a text, and
    only one that parsed: an anonymous sender can register only what it may run (a public document, parsed
    under the anonymous limits)."""

    def __init__(self, max_entries: int = PERSISTED_MAX_ENTRIES, max_characters: int = PERSISTED_MAX_CHARACTERS):
        self.max_entries = max_entries
        self.max_characters = max_characters
        self.characters = 0
        self._texts: OrderedDict[str, str] = OrderedDict()

    def text(self, sha256_hash: str) -> str | None:
        text = self._texts.get(sha256_hash)
        if text is not None:
            self._texts.move_to_end(sha256_hash)
        return text

    def register(self, sha256_hash: str, text: str) -> None:
        if sha256_hash in self._texts or len(text) > self.max_characters:
            return
        self._texts[sha256_hash] = text
        self.characters += len(text)
        while len(self._texts) > self.max_entries or self.characters > self.max_characters:
            _, forgotten = self._texts.popitem(last=False)
            self.characters -= len(forgotten)

    def __len__(self) -> int:
        return len(self._texts)


def parsed_document(text: str) -> Document:
    """A document parsed at once on this thread, under the limits of an authenticated request (tools and tests;
    the server leaves a long new text to ``Document.ensure_parsed``, off the event loop)."""
    return _prepared(text, MAX_DOCUMENT_LENGTH, MAX_TOKENS)


class DocumentCache:
    """LRU of recent documents by text; texts over ``MAX_CACHED_TEXT`` are prepared each time. Beside it, the
    automatic persisted queries (by hash).

    A text is kept from its second sighting on (the first leaves only its hash): clients send the same few
    documents again and again, an attacker a new one each time, and a syntax tree is about one Python object per
    two characters; a heap of millions of them made each full garbage collection stop the event loop for
    hundreds of milliseconds. The cache is also bounded by the characters it holds."""

    def __init__(self, size: int = CACHE_SIZE, max_characters: int = MAX_CACHED_CHARACTERS):
        self.size = size
        self.max_characters = max_characters
        self.characters = 0
        self._entries: OrderedDict[str, Document] = OrderedDict()
        self.persisted = PersistedQueries()
        self._seen: OrderedDict[int, None] = OrderedDict()  # hashes of texts seen once
        self._last: Document | None = None  # what ``public`` parsed, for the ``get`` of the same request

    def get(self, text: str) -> Document:
        """The document for a request that passed the gate; a long new text is left for ``ensure_parsed``."""
        document = self._entries.get(text)
        if document is not None:
            self._entries.move_to_end(text)
            return document
        last = self._last
        if last is not None and last.text == text:  # parsed by ``public`` for this same request
            self._last = None
            return last
        if len(text) > INLINE_PARSE_LENGTH:
            document = Document.unparsed(text)
        else:
            document = _prepared(text, MAX_DOCUMENT_LENGTH, MAX_TOKENS)
        self._keep(document)
        return document

    def public(self, text: str, public_introspection: bool) -> bool:
        """May a request without credentials run this text? Decided on a parse bounded for anonymous senders;
        a document too long or too large for that is simply not public."""
        document = self._entries.get(text)
        if document is None or not document.parsed:
            document = _prepared(text, ANONYMOUS_MAX_LENGTH, ANONYMOUS_MAX_TOKENS)
            if document.ast is None:
                return False  # not kept: under the limits of the authenticated, the text may parse
            self._keep(document)
            self._last = document
        return document.is_public(public_introspection)

    def _keep(self, document: Document) -> None:
        if len(document.text) > MAX_CACHED_TEXT or not self._seen_before(document.text):
            return
        replaced = self._entries.pop(document.text, None)
        if replaced is not None:
            self.characters -= len(replaced.text)
        self._entries[document.text] = document
        self.characters += len(document.text)
        while len(self._entries) > self.size or self.characters > self.max_characters:
            _, dropped = self._entries.popitem(last=False)
            self.characters -= len(dropped.text)

    def _seen_before(self, text: str) -> bool:
        key = hash(text)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > SEEN_SIZE:
            self._seen.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._entries)
