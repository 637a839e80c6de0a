"""Screenshot an HTML report in headless Chromium at a fixed width (README images).

Usage (from the repository root)::

    optisched plan datasets/city --out /tmp/city-plan --solver greedy
    optisched report datasets/city /tmp/city-plan --out /tmp/city.html
    python docs/make_report_screenshot.py /tmp/city.html docs/img/report-city.png \\
        --height 1900

Drives Debian's ``chromium`` (on PATH) through Playwright's Python API with
``executable_path`` (Playwright's own browser download needs the internet), waits
for the figures, fails on any console error, and writes the top ``--height``
pixels of the page at ``--width`` (default 1400) px, or the whole page with
``--full``. ``--scroll-to ID`` starts the shot at that section instead.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

log = logging.getLogger("make_report_screenshot")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=1800)
    ap.add_argument("--full", action="store_true", help="the whole page")
    ap.add_argument("--scroll-to", default=None, help="section id the shot starts at")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not on PATH (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(args.html.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(500)
        if errors:
            raise SystemExit(f"console errors: {errors}")
        top = 0.0
        if args.scroll_to:
            top = float(page.evaluate(
                "id => document.getElementById(id).getBoundingClientRect().top + scrollY",
                args.scroll_to))
        clip = None if args.full else {"x": 0, "y": top, "width": args.width,
                                       "height": args.height}
        page.screenshot(path=str(args.out), full_page=True, clip=clip)
        browser.close()
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
