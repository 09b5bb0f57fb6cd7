"""A real headless browser for the console's tests and bench: Debian's Chromium driven by
Playwright for Python, pointed at the system browser (`executable_path`), since Playwright's own
browser download is not used here. `bin/setup` installs the `chromium` package."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "images"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """CHROMIUM (a path), else the first of `chromium`, `chromium-browser`, `google-chrome` on PATH."""
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        return chosen
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no Chromium found: run bin/setup (it installs Debian's chromium package), or set CHROMIUM "
                       "to a Chromium or Chrome binary")


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A headless Chromium, closed (its processes ended) on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, token: str, path: str = "/console/executions") -> None:
    """Sign in through the form, as a person would, and land on `path`."""
    page.goto(f"{base_url}{path}")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{path}*")


def screenshot(page: Page, name: str, scratch: Path) -> Path:
    """A full-page PNG: under docs/images/ (docs/console.md shows them) when UPDATE_SCREENSHOTS=1,
    else under `scratch`, so a test run leaves the work tree as it was."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path
