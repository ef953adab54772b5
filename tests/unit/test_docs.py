"""The documentation holds together: the README stays short, every relative link in README.md, CONTRIBUTING.md
and docs/*.md reaches a file (and a heading there, by GitHub's anchor rules), and every repository path the
pages name in code spans exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tokengate"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
README_MAX_BYTES = 12 * 1024

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
# A repository path in a code span: directories and files of the tree, not URLs, settings or commands.
PATH_LIKE = re.compile(r"^\.?[A-Za-z0-9_<>*.-]+(/[A-Za-z0-9_<>*.-]*)+$")
SOURCE_SUFFIXES = {
    ".py",
    ".md",
    ".sql",
    ".js",
    ".mjs",
    ".ts",
    ".html",
    ".css",
    ".json",
    ".lock",
    ".png",
    ".graphql",
    ".toml",
    ".yml",
    ".csv",
}
TOP_LEVEL = {entry.name for base in (ROOT, PACKAGE) for entry in base.iterdir()} - {"__pycache__"}
# Made by running things, so absent from a fresh clone.
GENERATED = ("e2e-artifacts/", ".venv", ".tokengate/", "bench/results/", "dist/", ".venv-codegen/")


def prose(text: str) -> str:
    """The page without its fenced code blocks (their lines become empty, so nothing else moves)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text without markup, lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(prose(page.read_text(encoding="utf-8"))):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    text = CODE_SPAN.sub("", prose(page.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def looks_like_a_path(span: str) -> bool:
    """A file with a source extension, a folder (a trailing slash), or anything under a top-level entry of the
    repository or of the package; media types (``application/json``), networks and ``DIR/…`` are none."""
    if not PATH_LIKE.match(span) or span.startswith(("../", "./")):
        return False
    first = span.split("/", 1)[0]
    return span.endswith("/") or Path(span).suffix in SOURCE_SUFFIXES or first in TOP_LEVEL


def named_paths(page: Path) -> list[str]:
    spans = (match.group(2).strip() for match in CODE_SPAN.finditer(prose(page.read_text(encoding="utf-8"))))
    return [path for path in (span.split("::", 1)[0] for span in spans) if looks_like_a_path(path)]


def named_tests(page: Path) -> list[tuple[str, str]]:
    """``tests/….py::test_name`` spans: a file and a function it should define."""
    spans = (match.group(2).strip() for match in CODE_SPAN.finditer(prose(page.read_text(encoding="utf-8"))))
    return [tuple(span.split("::", 1)) for span in spans if re.fullmatch(r"tests/[\w/]+\.py::\w+", span)]


def exists(path: str) -> bool:
    """A path from the repository root, or (as the pages write module paths) from src/tokengate/; ``<name>``
    and ``*`` stand for any name."""
    pattern = re.sub(r"<[^>]*>", "*", path).rstrip("/")
    for base in (ROOT, PACKAGE):
        if "*" in pattern:
            if any(base.glob(pattern)):
                return True
        elif (base / pattern).exists():
            return True
    return False


def test_the_readme_is_read_in_ten_minutes():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference into docs/"


def test_slugs_follow_githubs_rules():
    assert slug("Ids and `node`") == "ids-and-node"
    assert slug("`service_token.created`") == "service_tokencreated"
    assert slug("Revocation, scale and memory") == "revocation-scale-and-memory"
    assert slug("Where is this refused?") == "where-is-this-refused"


def test_a_broken_link_and_a_missing_path_are_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n[ok](#top) [gone](missing.md) [bad anchor](#nowhere)\n```\n[in code](skipped.md)\n```\n"
        "`src/tokengate/app.py` `src/tokengate/nothing_here.py`\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md: no such file", "#nowhere: no heading #nowhere in page.md"]
    assert [path for path in named_paths(page) if not exists(path)] == ["src/tokengate/nothing_here.py"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert not broken_links(page)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_path_named_exists(page):
    missing = [path for path in named_paths(page) if not path.startswith(GENERATED) and not exists(path)]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_test_named_exists(page):
    missing = [
        f"{path}::{name}"
        for path, name in named_tests(page)
        if not (ROOT / path).exists()
        or not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert not missing, f"{page.relative_to(ROOT)} names tests that do not exist: {missing}"
