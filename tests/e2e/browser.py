"""Headless Debian chromium through Playwright, for the tests and the bench of the HTML run report."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package) first")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
            yield context.new_page()
        finally:
            browser.close()
