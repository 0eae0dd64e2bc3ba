"""Save a 1400-px-wide screenshot of each dashboard page and of ``bot report --html``'s file:
``python scripts/screenshots.py OUT_DIR [--db PATH]``.

Without ``--db`` it makes a demo trade log first (the real daemon against the replay exchange, cost-blind gate so
there are fills).  It serves the dashboard on a free loopback port and drives Debian's headless chromium through
Selenium (``apt-get install -y chromium chromium-driver``; ``pip install selenium``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAGES = ("overview", "tearsheet", "symbols", "trades", "risk", "forecasts", "health")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--hide-scrollbars")
# Tables or charts wider than the page (cut off, or behind a scrollbar at this width).
OVERFLOW = """const out = [];
const page = document.documentElement.clientWidth;
for (const el of document.querySelectorAll('table, .chart, pre')) {
  const r = el.getBoundingClientRect();
  // A chart's plot is as wide as its box, border included: only a chart past the page's edge counts.
  const inner = el.classList.contains('chart') ? false : el.scrollWidth > el.clientWidth + 1;
  if (r.right > page + 1 || inner) out.push((el.id || el.className || el.tagName) +
      ' ' + Math.round(r.width) + ' px');
}
return out;"""
DRAWN = """const c = Array.from(document.querySelectorAll('[data-figure]'));
return document.readyState === 'complete' && c.every(el => el.data && el.querySelector('.main-svg'));"""


def demo_log(db: Path, bars: int) -> str:
    from bot.config import Settings
    from bot.feeds.replay.server import ReplayExchange
    from bot.feeds.replay.synthetic import generate_market
    from bot.runs.daemon import run_daemon

    symbols = ["BTC/USDT", "ETH/USDT", "XRP/USDT"]
    data = generate_market(symbols, 128 + bars + 1, 1_704_067_200_000, seed=7)

    async def go() -> None:
        async with ReplayExchange(data, timeframe="1h", bar_interval_s=0.0, start_index=128) as exchange:
            settings = Settings().with_overrides(
                run={"db": str(db), "id": "demo"}, market={"symbols": symbols},
                feed={"ws_url": exchange.ws_url, "rest_url": exchange.rest_url, "assembly_timeout_s": 5.0},
                forecast={"skill": {"enabled": False}}, risk={"gate": {"rule": "strength"}})
            await run_daemon(settings, asyncio.Event(), max_bars=bars)

    asyncio.run(go())
    return "demo"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="folder for the PNG files")
    p.add_argument("--db", type=Path, default=None, help="trade log to show (default: a fresh demo log)")
    p.add_argument("--run", default=None, help="run id (default: the most recent)")
    p.add_argument("--bars", type=int, default=300, help="bars of the demo log (default 300)")
    p.add_argument("--width", type=int, default=1400, help="window width in pixels (default 1400)")
    args = p.parse_args()
    for tool in ("chromium", "chromedriver"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install -y chromium chromium-driver", file=sys.stderr)
            return 2
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from bot.web.app import create_app
    from bot.web.serve import listen, uvicorn_server

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="screenshots-"))
    db = args.db or work / "demo.sqlite"
    if args.db is None:
        demo_log(db, args.bars)
    app = create_app(db)
    run = args.run or app.state.reader.runs()[0].run_id
    sock = listen("127.0.0.1", 0)
    server = uvicorn_server(app, embedded=True)
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (*FLAGS, f"--user-data-dir={work / 'profile'}", f"--window-size={args.width},1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "chromedriver"))
    from bot.web.report import write_report

    report = write_report(db, run, work / "report.html")
    shots = [("runs", url + "/")] + [(page, f"{url}/runs/{run}/{page}") for page in PAGES]
    shots.append(("report", report.as_uri()))
    try:
        for name, address in shots:
            driver.set_window_size(args.width, 1000)
            driver.get(address)
            deadline = time.monotonic() + 60
            while not driver.execute_script(DRAWN) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)   # plotly's transitions
            # The report file holds every page: it gets a taller cap than one page.
            cap = 24000 if name == "report" else 6000
            height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), cap)
            driver.set_window_size(args.width, height)
            time.sleep(0.5)
            target = args.out / f"{name}.png"
            driver.save_screenshot(str(target))
            wide = driver.execute_script(OVERFLOW)
            print(target, f"(wider than {args.width} px: {', '.join(wide)})" if wide else "")
    finally:
        driver.quit()
        server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
