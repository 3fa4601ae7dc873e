"""The dashboard's HTML: one shell for every page (the page's own script fills it in from the JSON endpoints),
the login form, and the static files (the page's script and style, and the vendored Chart.js)."""

from __future__ import annotations

import html
from importlib import resources

PAGES = {"overview": "Overview", "segments": "Segments", "experiments": "Experiments", "models": "Models",
         "customer": "Customer"}
STATIC_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "chart.umd.min.js": "text/javascript",
                "chart.js.LICENSE.md": "text/plain"}
# Nothing but this worker's own files runs on its pages.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def static_file(name: str) -> tuple[bytes, str] | None:
    """A static file's bytes and content type, None if it is not one of them (no path from the request reaches
    the file system)."""
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        return None
    return resources.files(__package__).joinpath("static", name).read_bytes(), content_type


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path on this server only (never another site).

    >>> safe_next("/dashboard/models"), safe_next("//evil.example"), safe_next("https://evil.example")
    ('/dashboard/models', '/dashboard/overview', '/dashboard/overview')
    """
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/dashboard/overview"


def login_page(why: str = "", then: str | None = None) -> str:
    message = f'<p class="error">{html.escape(why)}</p>' if why else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>perso: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;color:#1d2733}}
input{{width:100%;padding:.5rem;margin:.4rem 0 1rem;box-sizing:border-box}}button{{padding:.5rem 1.2rem}}
.error{{color:#a4262c}}</style></head>
<body><h1>perso dashboard</h1>{message}
<form method="post" action="/dashboard/login">
<label for="token">Access token (PERSO_WEB_TOKENS; <code>perso web-token</code> makes one)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(safe_next(then))}">
<button type="submit">Sign in</button></form></body></html>
"""


def shell(page: str) -> str:
    """The page shell: navigation, a search box, and the containers the page's script fills."""
    nav = "".join(f'<a href="/dashboard/{name}"{" class=active" if name == page else ""}>{title}</a>'
                  for name, title in PAGES.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>perso: {PAGES[page]}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
<script src="/dashboard/static/chart.umd.min.js" defer></script>
<script src="/dashboard/static/dashboard.js" defer></script>
</head>
<body data-page="{page}">
<header><strong>perso</strong><nav>{nav}</nav>
<form id="search" action="/dashboard/customer" method="get" role="search">
<input name="id" id="search-input" placeholder="find a customer by id" autocomplete="off" list="search-hits">
<datalist id="search-hits"></datalist></form>
<span id="whoami"></span><a href="/dashboard/logout">sign out</a></header>
<main id="content"><p id="status">loading…</p></main>
</body></html>
"""
