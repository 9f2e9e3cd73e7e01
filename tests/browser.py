"""Headless Chromium for the page tests (not a test module itself)."""

from __future__ import annotations

import os
import shutil

import pytest


def browser_or_skip() -> str:
    """The Chromium binary; skips the calling test module when there is none, unless LANDSCAPE_REQUIRE_BROWSER=1
    (CI installs it: a missing browser must then fail, not skip)."""
    found = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if found is None:
        if os.environ.get("LANDSCAPE_REQUIRE_BROWSER") == "1":
            raise RuntimeError("LANDSCAPE_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no headless Chromium on PATH", allow_module_level=True)
    return found
