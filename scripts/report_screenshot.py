"""Screenshots of an HTML report, as a reviewer sees it, in headless Chromium (the README's pictures).

    python scripts/report_screenshot.py report.html docs/ --task "maze_medium[navigation]"

writes `report-summary.png` (the evaluation summary and the score plot), `report-replay.png`
(one task's row with its replay player, a moment into the episode) and `report-gate.png` (that
task's gate: outcome, reason, design and the plot of how it decided). Needs Debian's chromium and
the playwright package (dev extras); playwright drives the installed browser and downloads none.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from pytest_policyeval.reporting.browser import CHROMIUM, launch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("report", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--task", default="", help="text of the result row whose replay to show")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the replay plays first")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright, args.chromium)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(args.report.resolve().as_uri())
        page.click("#show_all_details")
        page.wait_for_selector(".pe-replay canvas")
        page.locator("#policyeval-summary").screenshot(path=str(args.out_dir / "report-summary.png"))
        row = page.locator("tbody.results-table-row", has_text=args.task).first
        row.scroll_into_view_if_needed()
        time.sleep(args.seconds)
        row.locator(".pe-replay").first.locator("button[data-action=toggle]").click()  # hold the frame
        # The result row and the task's details, without pytest-html's captured-log box below.
        top = row.locator("tr.collapsible").bounding_box()
        details = row.locator(".extraHTML").bounding_box()
        clip = {
            "x": top["x"],
            "y": top["y"],
            "width": top["width"],
            "height": details["y"] + details["height"] - top["y"] + 4,
        }
        page.screenshot(path=str(args.out_dir / "report-replay.png"), clip=clip)
        # The same task's gate: outcome, reason, design, and the plot of how it decided.
        gate = row.locator(".pe-task").first
        gate.scroll_into_view_if_needed()
        gate.screenshot(path=str(args.out_dir / "report-gate.png"))
        browser.close()
    for name in ("report-summary.png", "report-replay.png", "report-gate.png"):
        print(args.out_dir / name)


if __name__ == "__main__":
    main()
