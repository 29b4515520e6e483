"""The HTML report in a real headless Chromium: the replay animates, its controls work, the plot shows.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` package, which drives that
browser (it downloads none). Outside CI the test is skipped when either is missing; in CI
(`CI=true`) a missing browser is a failure, so the check cannot silently vanish.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_policyeval.reporting.browser import CHROMIUM, launch

pytest.importorskip("pytest_html")
REPO = Path(__file__).resolve().parents[1]
MAIL_SIZE = 2_000_000  # bytes: well under common attachment limits
TEAM_RED = (214, 69, 61)  # the player's first team colour, #d6453d
THRESHOLD_RED = (198, 40, 40)  # the plot's threshold line, #c62828
POLICY_BLUE = (78, 121, 167)  # the plot's first policy, #4e79a7


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required in CI)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full navigation suite, shipped checkpoint and random baseline, one replay per task.

    Three episodes a task keep the run short; the report's size depends on the recorded episodes.
    """
    out = tmp_path_factory.mktemp("report") / "report.html"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:importnb", "-p", "no:cacheprovider", "-q",
        str(REPO / "suites/navigation.yaml"),
        "--policy-uri", f"pytorch://{REPO / 'examples/policies/navigation.pt'}", "--policy-uri", "random://",
        "--html", str(out), "--self-contained-html", "--num-episodes", "3",
    ]  # fmt: skip
    # One thread: this runs beside the test workers on a small machine.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # random fails its gates
    return out


@pytest.fixture(scope="module")
def browser():
    _need(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, report: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    remote: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    def offline(route) -> None:  # the report must need nothing but its own file
        if not route.request.url.startswith(("file:", "data:", "blob:")):
            remote.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", offline)
    page.goto(report.as_uri())
    page.click("#show_all_details")  # pytest-html collapses passed rows; a reviewer opens them
    page.wait_for_selector(".pe-replay canvas")
    yield page
    assert errors == [], errors
    assert remote == [], remote
    page.close()


def _image(png: bytes):
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


def _has_colour(image, colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return any(
        all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))
        for _, pixel in image.getcolors(maxcolors=1 << 20)
    )


def _canvas_png(replay) -> bytes:
    import base64

    url = replay.locator("canvas").evaluate("canvas => canvas.toDataURL('image/png')")
    return base64.b64decode(url.split(",", 1)[1])


def _replay(page, test_name: str):
    row = page.locator("tbody.results-table-row", has_text=test_name).first
    replay = row.locator(".pe-replay").first
    replay.scroll_into_view_if_needed()
    return replay


def test_the_report_is_small_enough_to_mail(report: Path) -> None:
    assert report.stat().st_size < MAIL_SIZE


def test_every_task_has_a_player_that_draws_the_map(page) -> None:
    assert page.locator(".pe-replay canvas").count() == 26  # 13 tasks x 2 policies
    image = _image(_canvas_png(_replay(page, "maze_medium[navigation]")))
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) >= 4  # floor, walls, the goal, the agent (and its trail)
    assert _has_colour(image, TEAM_RED)


def test_the_replay_animates_and_its_controls_work(page, tmp_path: Path) -> None:
    replay = _replay(page, "maze_large[navigation]")  # 1000 steps: still playing a second later
    assert replay.locator("select").input_value() == "8"  # long episodes play faster: ~30 s each
    first_step = int(replay.get_attribute("data-step"))
    first_frame = _canvas_png(replay)
    page.screenshot(path=str(tmp_path / "playing.png"))
    time.sleep(1.0)
    second_step = int(replay.get_attribute("data-step"))
    assert second_step > first_step
    assert _canvas_png(replay) != first_frame  # the agent moved on the canvas

    replay.locator("button[data-action=toggle]").click()  # pause
    paused = int(replay.get_attribute("data-step"))
    time.sleep(0.5)
    assert int(replay.get_attribute("data-step")) == paused
    assert replay.locator("button[data-action=toggle]").inner_text() == "play"
    replay.locator("button[data-action=forward]").click()
    assert int(replay.get_attribute("data-step")) == paused + 1
    replay.locator("button[data-action=back]").click()
    replay.locator("button[data-action=back]").click()
    assert int(replay.get_attribute("data-step")) == paused - 1
    replay.locator("button[data-action=restart]").click()
    assert int(replay.get_attribute("data-step")) == 0
    assert "step 1 / 1000" in replay.locator(".pe-replay__status").inner_text()
    replay.locator("input[type=range]").fill("500")
    assert int(replay.get_attribute("data-step")) == 500
    assert _image((tmp_path / "playing.png").read_bytes()).size == (1400, 1000)


def test_the_plot_is_visible(page) -> None:
    plot = page.locator("#policyeval-plot")
    assert plot.is_visible()
    box = plot.bounding_box()
    assert box["width"] > 600 and box["height"] > 13 * 28  # a row per task, two bars each
    image = _image(plot.screenshot())
    assert _has_colour(image, THRESHOLD_RED) and _has_colour(image, POLICY_BLUE)
    assert plot.locator("text", has_text="navigation/maze_large").count() == 1


def test_each_gated_task_shows_why_its_gate_stopped(page, tmp_path: Path) -> None:
    row = page.locator("tbody.results-table-row", has_text="maze_large[navigation]").first
    plot = row.locator("svg.pe-trace")
    plot.scroll_into_view_if_needed()
    assert plot.is_visible()
    image = _image(plot.screenshot(path=str(tmp_path / "gate.png")))
    assert _has_colour(image, THRESHOLD_RED) and _has_colour(image, POLICY_BLUE, tolerance=40)
    assert plot.locator("line[data-episode]").count() == 1  # the stop
    assert row.locator(".pe-gate").is_visible()
    # A plot for every task whose gate weighed evidence (an e-value in its row).
    evidence = page.locator("td.col-evidence").all_inner_texts()
    assert page.locator("svg.pe-trace").count() == sum(1 for text in evidence if text.strip() != "-") > 0


def test_hostile_names_show_as_text_and_run_no_script(browser, tmp_path: Path) -> None:
    """Policies whose file names are markup: labels, URIs (the baseline's too) and errors reach the
    report as text."""
    import shutil

    from helpers import MINI_SUITE, write_suite

    hostile = tmp_path / "<img src=x onerror=alert(1)>.pt"
    shutil.copy(REPO / "examples/policies/navigation.pt", hostile)
    baseline = tmp_path / "<svg onload=alert(3)>.pt"
    shutil.copy(REPO / "examples/policies/navigation.pt", baseline)
    suite = write_suite(  # the file's name is part of every test id
        tmp_path,
        MINI_SUITE.replace("name: mini", "name: mini\ndescription: '<script>alert(2)</script>'"),
        name="suites/<img src=y onerror=alert(4)>.yaml",
    )
    out = tmp_path / "report.html"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:importnb", "-p", "no:cacheprovider", "-q", str(suite),
        "--policy-uri", f"file://{hostile}", "--policy-uri", "file://<b>missing</b>.pt",
        "--baseline-uri", f"file://{baseline}",
        "--html", str(out), "--self-contained-html", "--num-episodes", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert out.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(out.as_uri())
    page.click("#show_all_details")
    page.wait_for_timeout(500)
    assert dialogs == []
    assert page.locator("img[onerror]").count() == 0 and page.locator("b", has_text="missing").count() == 0
    assert page.locator("td.col-testId", has_text="<img src=y onerror=alert(4)>.yaml::").count() > 0
    assert page.locator("svg[onload]").count() == 0
    assert page.locator("text=<img src=x onerror=alert(1)>").count() > 0  # the URI, shown as text
    assert (
        page.locator("text=<svg onload=alert(3)>").count() > 0
    )  # the baseline's, in the summary and details
    assert page.locator("svg.pe-differences").count() > 0  # the hostile policy was gated against it
    page.close()
