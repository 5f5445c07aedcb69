"""A live sidecar server and a real headless Chromium (Debian's package, driven by Playwright).

Playwright never downloads a browser here: it launches /usr/bin/chromium (`.ci/chromium-up.sh`
installs it). Without it the browser tests skip locally and fail in CI (`CI=true`).
Screenshots go to artifacts/screenshots/ (or TICKETBILL_SCREENSHOTS), kept by CI.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

CHROMIUM = Path(os.environ.get("TICKETBILL_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(os.environ.get("TICKETBILL_SCREENSHOTS",
                                  Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"))


def require_chromium() -> None:
    """Fail in CI, skip locally (the rule of tests/conftest.py's `server_missing`)."""
    if CHROMIUM.is_file():
        return
    what = f"Chromium is not installed at {CHROMIUM} (run .ci/chromium-up.sh)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}, but CI must run the browser tests", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def live_server(ui) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The scenario's app served over HTTP on an ephemeral loopback port."""
    app: Flask = ui.app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def page(live_server: str) -> Iterator[object]:
    """A Chromium page (1440×900, German) on the live server."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="de-DE",
                                      base_url=live_server, accept_downloads=True)
        context.set_default_timeout(20_000)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        tab.screenshot(path=str(SCREENSHOTS / "zz-last-page.png"), full_page=True)  # where a failure stopped
        context.close()
        browser.close()
    assert errors == [], f"JavaScript errors on the pages: {errors}"


def shot(tab, name: str) -> Path:  # type: ignore[no-untyped-def]
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path
