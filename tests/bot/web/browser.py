"""Headless Debian chromium through Selenium, for the dashboard tests and ``scripts/screenshots.py``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def missing() -> str | None:
    """Why no browser can run here (None: one can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install -y chromium chromium-driver)"
    return None


def chromium(profile: Path, width: int = 1400, height: int = 1000) -> Any:
    """A fresh headless chromium (its own --user-data-dir) that keeps the console log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


# The number of charts on the page once every one is drawn by plotly.js ('' until then).
CHARTS_DRAWN = """
const charts = Array.from(document.querySelectorAll('[data-figure]'));
const drawn = charts.every(el => el.data && el.data.length > 0 && el.querySelector('.main-svg'));
return document.readyState === 'complete' && drawn ? String(charts.length) : '';
"""
