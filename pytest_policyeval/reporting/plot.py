"""Per-task scores against thresholds as an inline SVG (no plotting library, works offline).

One row per task. Tasks have different scales (a goal reached or not, tags per agent), so each row
has its own axis from its lowest to its highest value; bars are labelled with their numbers and the
gate's outcome. In a row each policy has a bar with the gate's interval (anytime-valid for a
sequential gate), and the threshold is a dashed red line. A result gated against a baseline has
its interval on the per-seed differences, not on the score, and the task's threshold was not what
it was judged on: its bar has neither, its outcome says "vs baseline", and a tick marks the
baseline's score on the same seeds. A row's axis spans the task's declared score range where it
has one, so bars of different tasks read alike. Rows are named as the result files name tasks
(`task@suite` where two suites name a task alike), and the legend wraps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from pytest_policyeval.results import TaskResult

POLICY_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f")
LABEL_WIDTH = 230
BAR_AREA = 380
VALUE_WIDTH = 150
BAR_HEIGHT = 14
ROW_GAP = 10
TOP = 34


def _svg(tag: str, content: str = "", **attributes: float | str) -> str:
    """One SVG element; attribute names use `_` for `-` (stroke_width)."""
    attrs = ""
    for name, value in attributes.items():
        text = f"{value:.1f}" if isinstance(value, float) else str(value)
        attrs += f' {name.rstrip("_").replace("_", "-")}="{text}"'
    return f"<{tag}{attrs}>{content}</{tag}>"


def _finite(*values: float | None) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def _on_score(result: TaskResult) -> bool:
    """Whether the result was judged on its score (with a baseline: on the per-seed differences)."""
    return not result.paired


def _verdict(result: TaskResult) -> str:
    if result.outcome is not None:
        verdict = {"pass": "pass", "fail": "FAIL", "inconclusive": "inconclusive"}.get(result.outcome, "")
        return f"{verdict} vs baseline" if result.paired and verdict else verdict
    return {True: "pass", False: "FAIL", None: ""}[result.passed]


def _declared_range(result: TaskResult) -> tuple[float, ...]:
    bounds = (result.design or {}).get("score_range") or ()
    return tuple(float(v) for v in bounds if isinstance(v, int | float) and math.isfinite(v))


def _row_scale(results: Sequence[TaskResult]) -> tuple[float, float]:
    values = _finite(
        *(r.score for r in results),
        *(v for r in results if _on_score(r) for v in (r.ci_low, r.ci_high, r.threshold)),
        *(r.baseline_score for r in results if r.paired),
        *(v for r in results for v in _declared_range(r)),
    )
    low = min([0.0, *values])
    high = max([0.0, *values])
    if high - low < 1e-9:
        high = low + 1.0
    return low, high + 0.05 * (high - low)


def policy_color(index: int) -> str:
    """The palette's colours, then hues spread by the golden angle (so two policies never share a
    colour), alternating lightness so that neighbouring hues still read apart."""
    if index < len(POLICY_COLORS):
        return POLICY_COLORS[index]
    extra = index - len(POLICY_COLORS)
    return f"hsl({extra * 137.508 % 360:.1f}, 55%, {40 + 15 * (extra % 2)}%)"


def score_plot_svg(results: Sequence[TaskResult]) -> str:
    """The plot for all results: rows ordered as collected, bars ordered by policy."""
    from pytest_policyeval.reporting.documents import task_keys

    ordered = sorted(results, key=lambda r: r.order)
    tasks: dict[str, list[TaskResult]] = {}
    for name, result in zip(task_keys(ordered), ordered, strict=True):
        tasks.setdefault(name, []).append(result)
    policies = list(dict.fromkeys(r.policy_label for r in sorted(results, key=lambda r: r.order[2])))
    color = {label: policy_color(i) for i, label in enumerate(policies)}

    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    legend, legend_height = _legend(policies, color, width, any(r.paired for r in results))
    parts: list[str] = []
    y = TOP + legend_height
    for task, group in tasks.items():
        low, high = _row_scale(group)

        def x_of(value: float, low: float = low, high: float = high) -> float:
            return LABEL_WIDTH + BAR_AREA * (value - low) / (high - low)

        row_height = len(group) * BAR_HEIGHT
        label_y = y + row_height / 2 + 4
        parts.append(_svg("text", escape(task), x=LABEL_WIDTH - 8, y=label_y, text_anchor="end"))
        parts.append(_svg("line", x1=x_of(0), x2=x_of(0), y1=y - 2, y2=y + row_height + 2, class_="axis"))
        for index, result in enumerate(group):
            top = y + index * BAR_HEIGHT
            middle = top + BAR_HEIGHT / 2
            label = escape(result.policy_label)
            if result.error is not None or math.isnan(result.score):
                parts.append(_svg("text", f"{label}: error", x=LABEL_WIDTH + 4, y=middle + 4, class_="err"))
                continue
            left, right = sorted((x_of(0), x_of(result.score)))
            verdict = _verdict(result)
            title = _svg("title", f"{escape(result.task)} [{label}]: {result.score:.3f}")
            parts.append(
                _svg(
                    "rect",
                    title,
                    x=left,
                    y=top + 2,
                    width=max(right - left, 1.0),
                    height=BAR_HEIGHT - 4,
                    fill=color[result.policy_label],
                )
            )
            if _on_score(result) and not math.isnan(result.ci_low) and not math.isnan(result.ci_high):
                ci_low, ci_high = x_of(max(result.ci_low, low)), x_of(min(result.ci_high, high))
                parts.append(_svg("line", x1=ci_low, x2=ci_high, y1=middle, y2=middle, class_="ci"))
            if result.paired and _finite(result.baseline_score):
                x = x_of(result.baseline_score)
                tick = _svg("title", f"the baseline's score on the same seeds: {result.baseline_score:.3f}")
                parts.append(_svg("line", tick, x1=x, x2=x, y1=top, y2=top + BAR_HEIGHT, class_="baseline"))
            parts.append(
                _svg(
                    "text",
                    f"{result.score:.3g} {verdict}".rstrip(),
                    x=LABEL_WIDTH + BAR_AREA + 6,
                    y=middle + 4,
                    class_=verdict.split()[0].lower() if verdict else "",
                )
            )
        thresholds = {r.threshold for r in group if r.threshold is not None and _on_score(r)}
        for threshold in sorted(thresholds):
            x = x_of(threshold)
            title = _svg("title", f"threshold {threshold:g}")
            parts.append(_svg("line", title, x1=x, x2=x, y1=y - 3, y2=y + row_height + 3, class_="threshold"))
        y += row_height + ROW_GAP

    height = y + 4
    style = (
        "text{font:12px sans-serif;fill:#222}.axis{stroke:#888;stroke-width:1}"
        ".ci{stroke:#111;stroke-width:1.5}.threshold{stroke:#c62828;stroke-width:2;stroke-dasharray:4 2}"
        ".baseline{stroke:#111;stroke-width:3}"
        ".fail,.err{fill:#c62828;font-weight:bold}.pass{fill:#2e7d32}.inconclusive{fill:#b26a00}"
    )
    return (
        f'<svg id="policyeval-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="task scores against thresholds">'
        f"<style>{style}</style>{''.join(legend)}{''.join(parts)}</svg>"
    )


LEGEND_LINE = 18
CHAR_WIDTH = 7.2  # 12px sans-serif, a little generous: an entry never runs into the next


def _legend(policies: list[str], color: dict[str, str], width: int, paired: bool) -> tuple[list[str], int]:
    """The legend's elements, wrapped onto as many lines as the plot's width needs, and the height
    it adds below the first line."""
    entries: list[tuple[float, list[str]]] = []  # (width, elements drawn at x=0, y=0)
    for label in policies:
        shown = label if len(label) <= 60 else label[:57] + "..."
        entries.append(
            (
                22 + CHAR_WIDTH * len(shown),
                [
                    _svg("rect", x=0.0, y=-10.0, width=12, height=12, fill=color[label]),
                    _svg("text", escape(shown), x=16.0, y=0.0),
                ],
            )
        )
    entries.append(
        (
            80.0,
            [_svg("line", x1=0, x2=0, y1=-12, y2=4, class_="threshold"), _svg("text", "threshold", x=6, y=0)],
        )
    )
    entries.append(
        (76.0, [_svg("line", x1=0, x2=24, y1=-4, y2=-4, class_="ci"), _svg("text", "interval", x=30, y=0)])
    )
    if paired:
        entries.append(
            (
                140.0,
                [
                    _svg("line", x1=2, x2=2, y1=-12, y2=2, class_="baseline"),
                    _svg("text", "baseline's score", x=10, y=0),
                ],
            )
        )
    elements, x, line = [], 8.0, 0
    for entry_width, drawn in entries:
        if x > 8.0 and x + entry_width > width - 8:
            x, line = 8.0, line + 1
        y = 18 + line * LEGEND_LINE
        elements.append(f'<g transform="translate({x:.1f},{y})">{"".join(drawn)}</g>')
        x += entry_width + 12
    return elements, line * LEGEND_LINE
