"""The summary's score plot: well-formed SVG, bars and thresholds where the numbers put them."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from pytest_policyeval.reporting.plot import BAR_AREA, LABEL_WIDTH, score_plot_svg
from pytest_policyeval.results import TaskResult

SVG = "{http://www.w3.org/2000/svg}"


def _result(
    task: str, label: str, score: float, threshold: float | None, order: tuple, **extra
) -> TaskResult:
    return TaskResult(
        suite="s", task=task, policy_uri=f"file://{label}", policy_label=label, order=order,
        threshold=threshold, higher_is_better=True, gate="mean", num_episodes=4, seed=0, score=score,
        ci_low=score - 0.1, ci_high=score + 0.1, passed=None if threshold is None else score >= threshold,
        **extra,
    )  # fmt: skip


def test_bars_and_thresholds_sit_at_their_values() -> None:
    results = [
        _result("nav/a", "good <&>", 2.0, 1.0, (0, 0, 0)),
        _result("nav/a", "bad", 0.5, 1.0, (0, 0, 1)),
        _result("nav/b", "good <&>", math.nan, None, (0, 1, 0), error="crashed"),
        _result("nav/b", "bad", 3.0, None, (0, 1, 1)),
    ]
    root = ET.fromstring(score_plot_svg(results))  # labels are escaped: the SVG parses
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert [bar.find(f"{SVG}title").text for bar in bars] == [
        "nav/a [good <&>]: 2.000",
        "nav/a [bad]: 0.500",
        "nav/b [bad]: 3.000",
    ]
    # Row nav/a spans 0 .. 2.1 (the top of the interval) plus 5%: widths follow the scores.
    high = 2.1 * 1.05
    assert float(bars[0].get("width")) == round(BAR_AREA * 2.0 / high, 1)
    assert float(bars[1].get("width")) == round(BAR_AREA * 0.5 / high, 1)
    (threshold,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold" and
                    line.find(f"{SVG}title") is not None]  # fmt: skip
    assert float(threshold.get("x1")) == round(LABEL_WIDTH + BAR_AREA * 1.0 / high, 1)
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "good <&>: error" in texts
    assert "2 pass" in texts and "0.5 FAIL" in texts and "3" in texts


def test_outcomes_label_the_bars_and_a_paired_result_has_no_score_interval_or_threshold() -> None:
    results = [
        _result("nav/a", "seq", 0.5, 0.5, (0, 0, 0), outcome="inconclusive", inconclusive="skip"),
        _result("nav/a", "vs", 0.25, 0.5, (0, 0, 1), outcome="pass", baseline_uri="random://"),
    ]
    results[0].passed = None
    root = ET.fromstring(score_plot_svg(results))
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "0.5 inconclusive" in texts and "0.25 pass vs baseline" in texts
    # The paired result's interval is on its differences: no whisker; nor is the task's threshold
    # what it was judged on, but the other result's threshold is drawn.
    whiskers = [line for line in root.iter(f"{SVG}line") if line.get("class") == "ci"]
    assert len(whiskers) == 1 + 1  # the sequential result's and the legend's
    thresholds = [line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold"]
    assert len(thresholds) == 1 + 1
    labels = [text for text in root.iter(f"{SVG}text") if text.text == "0.5 inconclusive"]
    assert labels[0].get("class") == "inconclusive"


def test_the_legend_wraps_inside_the_plot_however_long_the_labels() -> None:
    labels = [f"file:///runs/navigation_ppo_run_2025_06_12_epoch_{i:06d}.pt" for i in range(6)]
    results = [_result("nav/a", label, 0.5, 0.5, (0, 0, i)) for i, label in enumerate(labels)]
    svg = score_plot_svg(results)
    root = ET.fromstring(svg)
    width = float(root.get("width"))
    groups = [g for g in root.iter(f"{SVG}g") if g.get("transform", "").startswith("translate(")]
    texts = {g.find(f"{SVG}text").text: g for g in groups}
    assert set(labels) <= set(texts)  # every policy is named
    for text, group in texts.items():
        x = float(group.get("transform")[len("translate(") :].split(",")[0])
        assert x + 16 + 7.2 * len(text) <= width, text  # no entry runs past the plot's edge
    lines = {group.get("transform").split(",")[1] for group in groups}
    assert len(lines) > 1  # wrapped
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    top_of_rows = min(float(bar.get("y")) for bar in bars)
    assert top_of_rows > max(float(y.rstrip(")")) for y in lines)  # the rows start below the legend


def test_two_suites_naming_a_task_alike_get_a_row_each() -> None:
    first = _result("nav/a", "p", 1.0, 0.5, (0, 0, 0))
    second = _result("nav/a", "p", 0.2, 0.9, (1, 0, 0))
    second.suite = "other"
    root = ET.fromstring(score_plot_svg([first, second]))
    texts = [text.text for text in root.iter(f"{SVG}text")]
    assert "nav/a@s" in texts and "nav/a@other" in texts


def test_paired_bars_share_the_declared_range_and_mark_the_baseline() -> None:
    design = {"score_range": [0.0, 1.0]}
    results = [
        _result(
            "nav/a", "cand", 0.3, None, (0, 0, 0), baseline_uri="b://", baseline_score=0.8, design=design
        ),
        _result(
            "nav/b", "cand", 0.6, None, (0, 1, 0), baseline_uri="b://", baseline_score=0.5, design=design
        ),
    ]
    root = ET.fromstring(score_plot_svg(results))
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    widths = [float(bar.get("width")) for bar in bars]
    assert abs(widths[1] - 2 * widths[0]) <= 0.2  # 0.6 against 0.3 on one scale: twice as long
    ticks = [line for line in root.iter(f"{SVG}line") if line.get("class") == "baseline" and
             line.find(f"{SVG}title") is not None]  # fmt: skip
    assert [t.find(f"{SVG}title").text for t in ticks] == [
        "the baseline's score on the same seeds: 0.800",
        "the baseline's score on the same seeds: 0.500",
    ]
    assert float(ticks[0].get("x1")) > float(ticks[1].get("x1"))


def test_one_task_played_by_two_policies_keeps_its_plain_name() -> None:
    results = [_result("nav/a", "p", 1.0, 0.5, (0, 0, 0)), _result("nav/a", "q", 0.2, 0.5, (0, 0, 1))]
    texts = [text.text for text in ET.fromstring(score_plot_svg(results)).iter(f"{SVG}text")]
    assert "nav/a" in texts and not any(text and "@" in text for text in texts)


def test_every_policy_gets_its_own_colour_beyond_the_palette() -> None:
    labels = [f"p{i}" for i in range(40)]
    root = ET.fromstring(
        score_plot_svg([_result("nav/a", label, 0.5, 0.5, (0, 0, i)) for i, label in enumerate(labels)])
    )
    bars = [rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None]
    assert len(bars) == 40 and len({bar.get("fill") for bar in bars}) == 40
