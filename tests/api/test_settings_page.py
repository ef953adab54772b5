"""The Service Tokens settings page as the server delivers it: the page, its headers and its static files.

What the page does in a browser is driven in tests/e2e/test_settings_page.py (`make e2e`).
"""

from __future__ import annotations

import re
from pathlib import Path

from tokengate.doors.pages import STATIC_DIR

PAGE = "/settings/service-tokens"
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


async def test_page_is_html_with_a_strict_content_security_policy(server):
    status, html, headers = await server.get(PAGE)
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
    assert "<h1" in html and "+ New Token" in html and "Service Tokens" in html


async def test_page_needs_no_credentials_and_only_answers_get(server):
    status, _, _ = await server.get(PAGE, headers={"Authorization": "Bearer not-a-token"})
    assert status == 200
    async with server.session.post(server.url + PAGE) as response:
        assert response.status == 405


async def test_page_has_no_inline_script_style_or_handler(server):
    _, html, _ = await server.get(PAGE)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="module" src="/static/settings/service-tokens.js">']
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.DOTALL) == [""]
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handlers are blocked by the CSP"
    assert re.search(r"\sstyle\s*=", html) is None and "<style" not in html


async def test_scripts_and_styles_are_served_with_their_types(server):
    _, html, _ = await server.get(PAGE)
    assets = referenced_assets(html)
    assert sorted(assets) == ["/static/settings/service-tokens.js", "/static/settings/settings.css"]
    script = (SETTINGS_DIR / "service-tokens.js").read_text(encoding="utf-8")
    imported = [f"/static/settings/{name[2:]}" for name in module_imports(script)]
    assert imported == ["/static/settings/api.js"]
    # Browsers run a module script only when served with a JavaScript MIME type.
    expected_types = {".js": {"text/javascript", "application/javascript"}, ".css": {"text/css"}}
    for path in assets + imported:
        status, body, headers = await server.get(path)
        assert status == 200, path
        assert headers["Content-Type"].split(";")[0] in expected_types[Path(path).suffix], path
        assert body == (STATIC_DIR / path.removeprefix("/static/")).read_text(encoding="utf-8")


def test_nothing_refers_to_another_origin():
    files = sorted(SETTINGS_DIR.iterdir())
    assert {f.name for f in files} == {"service-tokens.html", "service-tokens.js", "api.js", "settings.css"}
    for file in files:
        text = file.read_text(encoding="utf-8")
        external = [url for url in URL.findall(text) if url not in NAMESPACES]
        assert external == [], f"{file.name} refers to {external}"
        assert "@import" not in text and "url(" not in text, file.name
    scripts = "\n".join(script.read_text(encoding="utf-8") for script in SETTINGS_DIR.glob("*.js"))
    assert re.findall(r"\bfetch\(([^,)]*)", scripts) == ["'/graphql'"]  # the public API, same origin
    assert all(name.startswith("./") for name in re.findall(r"from '([^']+)'", scripts))


def test_the_signed_in_token_stays_in_session_storage():
    source = "\n".join(script.read_text(encoding="utf-8") for script in SETTINGS_DIR.glob("*.js"))
    assert "sessionStorage.setItem(SESSION_KEY, token)" in source
    assert "localStorage" not in source and "document.cookie" not in source
    assert "innerHTML" not in source and "insertAdjacentHTML" not in source  # text only, never markup
