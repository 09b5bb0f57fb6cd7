"""The console over HTTP without a browser or Kafka (the gateway app on a fake backend): the
security headers, the session cookie's flags, and what sign-in, POSTs and pages refuse."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.console.security import CSP
from testkit.gateway_fakes import READER_TOKEN, TOKEN, FakeBackend, config, execution_records, run


def app(**overrides: Any) -> Any:
    backend = FakeBackend()
    changes, _ = execution_records("exec_console_http")
    backend.read_model.apply(*changes)
    return create_app(config(**overrides), backend=backend)


async def signed_in(client: TestClient[Any, Any], token: str = TOKEN) -> str:
    """Sign in; the CSRF token of the executions page."""
    response = await client.post("/console/login", data={"token": token, "next": "/console/executions"},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await (await client.get("/console/executions")).text()
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_console_pages_carry_the_security_headers_and_no_store() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for path in ("/console/login", "/console/executions"):
            response = await client.get(path, allow_redirects=False)
            assert response.headers["Content-Security-Policy"] == CSP
            assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "same-origin"
            assert response.headers["Cache-Control"] == "no-store"
        static = await client.get("/console/static/console.js")
        assert static.status == 200 and static.content_type in ("text/javascript", "application/javascript")
        assert static.headers["Cache-Control"].startswith("public")
    run(app(), scenario)


def test_console_sign_in_sets_an_httponly_samesite_strict_cookie_and_the_page_no_inline_script() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("console-session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/" in cookie and "Secure" not in cookie  # plain HTTP on loopback
        page = await (await client.get("/console/executions/exec_console_http")).text()
        assert "exec_console_http" in page and "<svg" in page
        assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page and "<style" not in page
        assert TOKEN not in page
    run(app(), scenario)


def test_console_secure_cookie_setting_names_a_host_only_secure_cookie() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-console-session=") and "Secure" in cookie and "Path=/" in cookie
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    run(app(console_secure_cookie=True), scenario)


def test_console_sign_in_from_another_site_or_with_a_bad_token_is_refused() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        cross = await client.post("/console/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"},
                                  allow_redirects=False)
        assert cross.status == 403 and "Set-Cookie" not in cross.headers
        wrong = await client.post("/console/login", data={"token": "nope"}, allow_redirects=False)
        assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
    run(app(), scenario)


def test_console_logout_without_the_csrf_token_is_refused_and_with_it_ends_the_session() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        csrf = await signed_in(client)
        refused = await client.post("/console/logout", data={}, allow_redirects=False)
        assert refused.status == 403
        assert (await client.get("/console/executions", allow_redirects=False)).status == 200
        done = await client.post("/console/logout", data={"csrf_token": csrf}, allow_redirects=False)
        assert done.status == 303
        assert (await client.get("/console/executions", allow_redirects=False)).status == 303
    run(app(), scenario)


def test_console_cancel_by_a_read_only_principal_is_forbidden() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        csrf = await signed_in(client, READER_TOKEN)
        page = await (await client.get("/console/executions/exec_console_http")).text()
        assert "Cancel execution" not in page
        response = await client.post("/console/executions/exec_console_http/cancel",
                                     data={"csrf_token": csrf, "confirm": "yes"}, allow_redirects=False)
        assert response.status == 403 and "executions:write" in await response.text()
    run(app(), scenario)


def test_console_unknown_execution_is_an_html_404_and_a_bad_filter_a_message() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        await signed_in(client)
        missing = await client.get("/console/executions/exec_nope")
        assert missing.status == 404 and missing.content_type == "text/html"
        listed = await client.get("/console/executions", params={"status": "NOPE", "from": "yesterday"})
        text = await listed.text()
        assert listed.status == 200 and "unknown status" in text and "is not a date" in text
    run(app(), scenario)


def test_console_disabled_serves_no_console() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/console/login", headers={"Authorization": f"Bearer {TOKEN}"})).status == 404
    run(app(console=False), scenario)
