"""Fixtures of the console's tests: a real processor and gateway on loopback (as the gateway's
end-to-end tests), and one headless Chromium for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from testkit.browser import headless_chromium
from testkit.gateway import Client, LiveGateway, Stack, gateway_config
from testkit.processor import ProcessorHarness


@pytest.fixture(scope="session")
def console_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    harness = ProcessorHarness(kafka_bootstrap, tmp_path_factory.mktemp("console-stack"))
    gateway = None
    try:
        processor = harness.start("p1")
        gateway = LiveGateway(gateway_config(harness))
        gateway.wait_ready()
        yield Stack(harness, gateway, Client(gateway.url), processor)
    finally:
        if gateway is not None:
            gateway.stop()
        harness.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
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
