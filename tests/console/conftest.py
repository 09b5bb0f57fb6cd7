"""Fixtures of the console's tests: a real processor and gateway on loopback (as the gateway's
end-to-end tests), and one headless Chromium for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from testkit.browser import headless_chromium
from testkit.gateway import Stack, running_stack


@pytest.fixture(scope="session")
def console_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, tmp_path_factory.mktemp("console-stack")) as running:
        yield running


# `expect` waits 5 s by default; on a loaded 2-core CI machine a live update can take longer (the
# stack, the broker and Chromium share the cores). Same bound as the pages' own actions.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API holds an event loop on the main thread while it runs, and
    tests after these (asyncio.run in the gateway's tests) need the thread without one."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()
