"""The account settings pages as the server delivers them: one shell (navigation, sign-in) around each page,
the security headers, and the static files they load.

What the pages do in a browser is driven in tests/e2e/test_settings_*.py (`make e2e`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokengate.http.pages import SETTINGS_PAGES, SETTINGS_TEMPLATES, STATIC_DIR

PAGE = "/settings/service-tokens"
PAGES = [page.path for page in SETTINGS_PAGES]
SCRIPTS = {page.path: page.script for page in SETTINGS_PAGES}
SETTINGS_DIR = STATIC_DIR / "settings"
# XML namespaces name things, they are not fetched (createElementNS needs the SVG one).
NAMESPACES = {"http://www.w3.org/2000/svg"}
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'`)]*""")


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def referenced_assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)="(/static/[^"]+)\"""", html)


def module_imports(source: str) -> list[str]:
    return re.findall(r"""^import [^;]* from '(\./[^']+)';""", source, re.MULTILINE)


def module_closure(entry: str) -> list[str]:
    """The script and every module it imports, directly or not (names in static/settings/)."""
    seen, pending = [], [entry]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.append(name)
            pending += [imported[2:] for imported in module_imports((SETTINGS_DIR / name).read_text(encoding="utf-8"))]
    return seen


def navigation_links(html: str) -> list[tuple[str, str, bool]]:
    nav = re.search(r'<nav class="settings-nav" aria-label="Account settings">(.*?)</nav>', html, re.DOTALL)
    assert nav, "the settings navigation is missing"
    return [
        (href, text, bool(current))
        for href, current, text in re.findall(r'<a href="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav.group(1))
    ]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_html_with_a_strict_content_security_policy(server, path):
    status, html, headers = await server.get(path)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = csp_directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["form-action"] == ["'none'"]  # a form can never put the pasted token in a URL
    assert csp["frame-ancestors"] == ["'none'"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "{{" not in html and "}}" not in html, "a template marker was left unfilled"
    # One shell: the same sign-in form on every page.
    assert 'id="sign-in-form"' in html and 'id="sign-out"' in html


async def test_the_service_tokens_page_keeps_its_content(server):
    _, html, _ = await server.get(PAGE)
    assert "<h1" in html and "+ New Token" in html and "Service tokens" in html
    assert "<title>Service tokens · Account settings · tokengate</title>" in html


@pytest.mark.parametrize("path", PAGES)
async def test_each_page_names_its_heading_as_the_navigation_does_and_has_an_icon(server, path):
    _, html, _ = await server.get(path)
    title = next(page.title for page in SETTINGS_PAGES if page.path == path)
    assert re.search(r"<h1[^>]*>" + re.escape(title) + "</h1>", html), title  # "Service tokens", not "Tokens"
    assert '<link rel="icon" href="/favicon.ico"' in html
    assert "of an account admin" not in html  # any member may sign in


async def test_the_favicon_every_tab_asks_for_is_served_from_this_origin(server):
    status, body, headers = await server.get("/favicon.ico")
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml") and body.startswith("<svg")


@pytest.mark.parametrize("path", PAGES)
async def test_one_navigation_lists_every_page_in_order_and_marks_this_one(server, path):
    _, html, _ = await server.get(path)
    titles = [page.title for page in SETTINGS_PAGES]
    assert titles == [
        "Service tokens",
        "Personal tokens",
        "Members",
        "IP restrictions",
        "Audit log",
        "Token policy",
        "Webhooks",
        "Keyless CI",
        "Single sign-on",
    ]
    assert navigation_links(html) == [(page.path, page.title, page.path == path) for page in SETTINGS_PAGES]


@pytest.mark.parametrize("path", ["/settings", "/settings/"])
async def test_the_settings_root_leads_to_the_first_page(server, path):
    async with server.session.get(server.url + path, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == PAGE


async def test_pages_need_no_credentials_and_only_answer_get(server):
    for path in PAGES:
        status, _, _ = await server.get(path, headers={"Authorization": "Bearer not-a-token"})
        assert status == 200, path
        async with server.session.post(server.url + path) as response:
            assert response.status == 405, path
    status, _, _ = await server.get("/settings/no-such-page")
    assert status == 404


@pytest.mark.parametrize("path", PAGES)
async def test_no_page_has_inline_script_style_or_handler(server, path):
    _, html, _ = await server.get(path)
    script = SCRIPTS[path]
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == [f'<script type="module" src="/static/settings/{script}">']
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.DOTALL) == [""]
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handlers are blocked by the CSP"
    assert re.search(r"\sstyle\s*=", html) is None and "<style" not in html


@pytest.mark.parametrize("path", PAGES)
async def test_scripts_and_styles_are_served_with_their_types(server, path):
    _, html, _ = await server.get(path)
    assets = referenced_assets(html)
    script = SCRIPTS[path]
    assert sorted(assets) == sorted([f"/static/settings/{script}", "/static/settings/settings.css"])
    modules = [f"/static/settings/{name}" for name in module_closure(script)]
    assert "/static/settings/api.js" in modules and "/static/settings/shell.js" in modules
    # Browsers run a module script only when served with a JavaScript MIME type.
    expected_types = {".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"}}
    for asset in sorted(set(assets + modules)):
        status, body, headers = await server.get(asset)
        assert status == 200, asset
        assert headers["Content-Type"].split(";")[0] in expected_types[Path(asset).suffix], asset
        assert body == (STATIC_DIR / asset.removeprefix("/static/")).read_text(encoding="utf-8")


async def test_page_markup_is_served_only_inside_the_shell(server):
    # The templates live outside the static folder: never an HTML answer without the security headers.
    assert not SETTINGS_TEMPLATES.is_relative_to(STATIC_DIR)
    for name in ("shell.html", "service-tokens.html", "ip-restrictions.html"):
        assert (SETTINGS_TEMPLATES / name).exists()
        for path in (f"/static/settings/{name}", f"/static/../templates/settings/{name}"):
            status, _, _ = await server.get(path)
            assert status == 404, path
    assert [path for path in SETTINGS_DIR.iterdir() if path.suffix == ".html"] == []


def test_every_module_in_the_folder_is_used_and_nothing_refers_to_another_origin():
    files = sorted(SETTINGS_DIR.iterdir())
    used = {name for page in SETTINGS_PAGES for name in module_closure(page.script)}
    assert {f.name for f in files} == used | {"settings.css"}
    for file in [*files, *sorted(path for path in SETTINGS_TEMPLATES.rglob("*") if path.is_file())]:
        text = file.read_text(encoding="utf-8")
        external = [url for url in URL.findall(text) if url not in NAMESPACES]
        assert external == [], f"{file.name} refers to {external}"
        assert "@import" not in text and "url(" not in text, file.name
    scripts = "\n".join(script.read_text(encoding="utf-8") for script in SETTINGS_DIR.glob("*.js"))
    # The public API and the session's sign-out (docs/sign-in.md), same origin.
    assert sorted(re.findall(r"\bfetch\(([^,)]*)", scripts)) == ["'/graphql'", "'/sign-out'"]
    assert all(name.startswith("./") for name in re.findall(r"from '([^']+)'", scripts))


def test_the_signed_in_token_stays_in_session_storage():
    source = "\n".join(script.read_text(encoding="utf-8") for script in SETTINGS_DIR.glob("*.js"))
    assert "sessionStorage.setItem(SESSION_KEY, token)" in source
    assert "localStorage" not in source and "document.cookie" not in source
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source  # text only, never markup
    assert "eval(" not in source and "new Function" not in source


def test_the_docs_list_every_page_with_one_small_screenshot():
    doc = Path(__file__).resolve().parents[2] / "docs" / "settings-pages.md"
    section = doc.read_text(encoding="utf-8")
    listed = re.findall(r"^\| \*\*([^*]+)\*\* `(/settings/[a-z-]+)` \|", section, re.MULTILINE)
    assert listed == [(page.title, page.path) for page in SETTINGS_PAGES]
    (image,) = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", section)
    picture = (doc.parent / image).resolve()
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size < 100_000
