"""Behind a reverse proxy: X-Forwarded-* count only from TRUSTED_PROXY_HOPS proxies, and an
https PUBLIC_URL makes the session cookie TLS-only."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session

from addon import create_app
from addon.settings import load_settings

SETTINGS = {
    "HELPDESK_KIND": "api", "PUSH_API_TOKEN": "push-token-0123456789abcdef-xyz",
    "SELLER_NAME": "Muster IT GmbH", "SELLER_STREET": "Musterstraße 1", "SELLER_POSTCODE": "10115",
    "SELLER_CITY": "Berlin", "SELLER_VAT_ID": "DE136695976", "SELLER_IBAN": "DE89370400440532013000",
}
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "billing.example.com",
             "X-Forwarded-For": "203.0.113.7"}


def app_with(tmp_path: Path, **extra: str) -> Flask:
    app = create_app(load_settings({**SETTINGS, "DATA_DIR": str(tmp_path), **extra}))
    app.secret_key = "test-only-secret"

    @app.get("/_seen")
    def seen() -> dict[str, str | None]:
        session["seen"] = "1"
        return {"url": request.url, "remote": request.remote_addr}

    return app


def test_forwarded_headers_are_ignored_without_a_trusted_proxy(tmp_path: Path) -> None:
    client = app_with(tmp_path).test_client()
    seen = client.get("/_seen", headers=FORWARDED, environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()
    assert seen == {"url": "http://localhost/_seen", "remote": "127.0.0.1"}


def test_one_trusted_proxy_gives_scheme_host_and_client(tmp_path: Path) -> None:
    app = app_with(tmp_path, TRUSTED_PROXY_HOPS="1", PUBLIC_URL="https://billing.example.com")
    response = app.test_client().get("/_seen", headers=FORWARDED, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.get_json() == {"url": "https://billing.example.com/_seen", "remote": "203.0.113.7"}
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_plain_http_public_url_keeps_cookies_usable_without_tls(tmp_path: Path) -> None:
    response = app_with(tmp_path).test_client().get("/_seen")
    assert "Secure" not in response.headers["Set-Cookie"]
