"""Pages for people: the account settings pages and GraphiQL's HTML, and the static files they load.

Every settings page is the one shell (``templates/settings/shell.html``: the navigation, the sign-in, the
session bar) around the page's own markup, with the page's module script; the list below is the navigation.
Everything comes from this origin and nothing runs inline, so an injected string cannot execute; every
HTML answer carries the same security headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Final

from aiohttp import web

PACKAGE_DIR: Final = Path(__file__).resolve().parents[1]
STATIC_DIR: Final = PACKAGE_DIR / "static"
# Outside STATIC_DIR: the markup is only ever served inside the shell, with the headers below.
SETTINGS_TEMPLATES: Final = PACKAGE_DIR / "templates" / "settings"
SIGN_IN_TEMPLATES: Final = PACKAGE_DIR / "templates" / "sign-in"
GRAPHIQL_PAGE: Final = STATIC_DIR / "graphiql" / "index.html"
FAVICON: Final = STATIC_DIR / "favicon.svg"

# form-action 'none' keeps a form from ever submitting the pasted token in a URL if the script fails.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Markup several pages share (templates/settings/partials/<name>.html), put in a page's markup with {{<name>}}.
SETTINGS_PARTIALS: Final = ("secret-dialog",)


@dataclass(frozen=True, slots=True)
class SettingsPage:
    """One entry of the settings navigation, served at ``/settings/<slug>``."""

    slug: str
    title: str
    script: str  # the page's module in static/settings/; its markup is templates/settings/<slug>.html

    @property
    def path(self) -> str:
        return f"/settings/{self.slug}"


SETTINGS_PAGES: Final = (
    SettingsPage("service-tokens", "Service tokens", "service-tokens.js"),
    SettingsPage("personal-tokens", "Personal tokens", "personal-tokens.js"),
    SettingsPage("members", "Members", "members.js"),
    SettingsPage("ip-restrictions", "IP restrictions", "ip-restrictions.js"),
    SettingsPage("audit-log", "Audit log", "audit-log.js"),
    SettingsPage("token-policy", "Token policy", "token-policy.js"),
    SettingsPage("webhooks", "Webhooks", "webhooks.js"),
    SettingsPage("trust-policies", "Keyless CI", "trust-policies.js"),
    SettingsPage("single-sign-on", "Single sign-on", "single-sign-on.js"),
)


def html_response(text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", headers=headers or PAGE_HEADERS)


def navigation(current: SettingsPage) -> str:
    links = []
    for page in SETTINGS_PAGES:
        mark = ' aria-current="page"' if page is current else ""
        links.append(f'      <li><a href="{page.path}"{mark}>{escape(page.title)}</a></li>')
    return "\n".join(links)


def fill(template: str, values: dict[str, str]) -> str:
    """``{{name}}`` markers replaced by our own text (titles and markup of this package, never a request's)."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def render_settings_page(page: SettingsPage) -> str:
    content = fill(
        (SETTINGS_TEMPLATES / f"{page.slug}.html").read_text(encoding="utf-8"),
        {
            name: (SETTINGS_TEMPLATES / "partials" / f"{name}.html").read_text(encoding="utf-8").rstrip("\n")
            for name in SETTINGS_PARTIALS
        },
    )
    return fill(
        (SETTINGS_TEMPLATES / "shell.html").read_text(encoding="utf-8"),
        {
            "title": escape(page.title),
            "script": page.script,
            "navigation": navigation(page),
            "content": content.rstrip("\n"),
        },
    )


def render_plain_page(name: str, title: str) -> str:
    """A page outside the settings (sign in, accept an invitation): ``templates/sign-in/<name>.html`` in the
    sign-in pages' shell (``page.html``), with its module ``static/sign-in/<name>.js``."""
    return fill(
        (SIGN_IN_TEMPLATES / "page.html").read_text(encoding="utf-8"),
        {
            "title": escape(title),
            "script": f"{name}.js",
            "content": (SIGN_IN_TEMPLATES / f"{name}.html").read_text(encoding="utf-8").rstrip("\n"),
        },
    )


def settings_page_handler(page: SettingsPage) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def settings_page(request: web.Request) -> web.Response:
        """``GET /settings/<slug>``: the shell around the page; scripts and styles are under ``/static/settings/``."""
        return html_response(render_settings_page(page))

    return settings_page


async def settings_index(request: web.Request) -> web.Response:
    raise web.HTTPFound(SETTINGS_PAGES[0].path)


async def favicon(request: web.Request) -> web.Response:
    """``GET /favicon.ico``: what every browser tab asks for (an SVG, which browsers read whatever the name)."""
    return web.Response(
        body=FAVICON.read_bytes(), content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/favicon.ico", favicon)
    for page in SETTINGS_PAGES:
        app.router.add_get(page.path, settings_page_handler(page))
    app.router.add_get("/settings", settings_index)
    app.router.add_get("/settings/", settings_index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
