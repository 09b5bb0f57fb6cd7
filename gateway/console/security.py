"""The console's browser-facing protections: response headers, the session cookie, and the
checks every state-changing request passes (Origin, CSRF token).

- Content-Security-Policy without 'unsafe-inline': scripts and styles come only from
  /console/static (no inline script, style element or style attribute anywhere); no frames
  (`frame-ancestors 'none'`, and X-Frame-Options: DENY for older browsers); forms post only here.
- `Cache-Control: no-store` on every response but the static assets: pages carry data.
- nosniff, `Referrer-Policy: same-origin` (the execution ids in our URLs never leave the site),
  `Cross-Origin-Opener-Policy: same-origin`, HSTS when served over TLS.
- The session cookie is HttpOnly and SameSite=Strict, Path=/. Served over TLS
  (`GATEWAY_CONSOLE_SECURE_COOKIE=true`, e.g. behind a TLS-terminating proxy) it is Secure and
  named with the `__Host-` prefix (the browser then refuses it from plain HTTP, another host or
  path). Over plain HTTP a cookie cannot be Secure: sign-in is then accepted only from a loopback
  peer (the gateway's default bind address is 127.0.0.1), never across a network.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURE_COOKIE = "__Host-console-session"
PLAIN_COOKIE = "console-session"
CSRF_FIELD = "csrf_token"


def set_security_headers(response: web.StreamResponse, *, static: bool, secure: bool) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cache-Control"] = "public, max-age=300" if static else "no-store"
    if secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"


def cookie_name(secure: bool) -> str:
    return SECURE_COOKIE if secure else PLAIN_COOKIE


def set_session_cookie(response: web.StreamResponse, value: str, *, secure: bool) -> None:
    response.set_cookie(cookie_name(secure), value, path="/", httponly=True, samesite="Strict", secure=secure)


def clear_session_cookie(response: web.StreamResponse, *, secure: bool) -> None:
    response.del_cookie(cookie_name(secure), path="/", httponly=True, samesite="Strict", secure=secure)


def loopback_peer(request: web.Request) -> bool:
    remote = request.remote
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def same_origin(request: web.Request) -> bool:
    """Whether a state-changing request comes from our own pages: its Origin (or, when a browser
    sent none, its Referer) names this host; a request naming neither is left to the CSRF token."""
    offered = request.headers.get("Origin") or request.headers.get("Referer")
    if offered is None:
        return True
    if offered == "null":
        return False
    parts = urlsplit(offered)
    # The host only: behind a TLS-terminating proxy the page is https and this request http.
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def safe_next(target: str | None, prefix: str) -> str:
    """Where to go after sign-in: a path of the console only (never another site)."""
    if target and target.startswith(prefix + "/") and not target.startswith("//") and "\\" not in target \
            and "://" not in target:
        return target
    return prefix + "/executions"
