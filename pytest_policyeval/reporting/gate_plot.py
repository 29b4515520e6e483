"""Why a gate stopped where it did, as inline SVG (no plotting library, works offline).

`trace_svg`: a sequential gate's running estimate and its anytime-valid interval after each
episode, against the threshold and the band threshold +- margin. The gate passes once the interval
leaves the band's bad side behind (its lower end above threshold - margin, when higher is better)
and fails once it leaves the good side behind; the episode it stopped at is marked, and episodes
played past it (the rest of the round, kept in the cache) are shaded as unused.

`differences_svg`: with a baseline, the per-seed differences the gate judged (candidate minus
baseline, negated when lower is better, so that above zero is always better) by episode, against
the difference threshold (-margin).

Both accept whatever a result holds, errors and NaN included: they return "" when there is
nothing to draw, and never write NaN into the SVG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from pytest_policyeval.results import TaskResult

WIDTH = 620
HEIGHT = 230
LEFT = 56  # room for the value axis
PLOT_WIDTH = 400
TOP = 24  # room for the stop marker's label
PLOT_HEIGHT = 160
MAX_POINTS = 400  # longer series are thinned to this many points (the last one always kept)
LABEL_GAP = 12  # the least vertical distance between two labels on the right

STYLE = (
    "text{font:11px sans-serif;fill:#222}.axis{stroke:#888;stroke-width:1}"
    ".band{fill:#f6e7b4;fill-opacity:0.55}.edge{stroke:#b8860b;stroke-width:1;stroke-dasharray:2 2}"
    ".threshold{stroke:#c62828;stroke-width:2;stroke-dasharray:5 3}"
    ".interval{fill:#4e79a7;fill-opacity:0.22;stroke:none}.bound{stroke:#4e79a7;stroke-width:1;fill:none}"
    ".estimate{stroke:#1f3b5c;stroke-width:1.8;fill:none}.stop{stroke:#111;stroke-width:1.5}"
    ".unused{fill:#bbb;fill-opacity:0.35}.zero{stroke:#555;stroke-width:1}"
    ".mean{stroke:#1f3b5c;stroke-width:1.5;stroke-dasharray:6 2}"
    ".better{fill:#2e7d32}.worse{fill:#c62828}.same{fill:#777}.muted{fill:#666}"
    ".pass{fill:#2e7d32;font-weight:bold}.fail{fill:#c62828;font-weight:bold}"
    ".inconclusive{fill:#b26a00;font-weight:bold}"
)


def _f(value: float) -> str:
    """A coordinate: one decimal, never '-0.0'."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _svg(tag: str, content: str = "", **attributes: float | int | str) -> str:
    """One SVG element; attribute names use `_` for `-` (stroke_width), a trailing `_` is dropped."""
    attrs = ""
    for name, value in attributes.items():
        text = _f(value) if isinstance(value, float) else escape(str(value))
        attrs += f' {name.rstrip("_").replace("_", "-")}="{text}"'
    return f"<{tag}{attrs}>{content}</{tag}>"


def _number(value: Any) -> float | None:
    """A finite float, or None (None, NaN, infinities and non-numbers are nothing to draw)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value + 0.0:.3g}"


def _thinned(count: int) -> list[int]:
    """The 0-based indices drawn for a series of `count` points: all, or MAX_POINTS with the last."""
    if count <= MAX_POINTS:
        return list(range(count))
    step = count / MAX_POINTS
    picked = sorted({min(count - 1, int(i * step)) for i in range(MAX_POINTS)} | {count - 1})
    return picked


def episode_x(episode: float, total: int) -> float:
    """The x of 1-based `episode` on an axis of `total` episodes: the middle of its slot."""
    return LEFT + PLOT_WIDTH * (episode - 0.5) / max(total, 1)


class _Scale:
    def __init__(self, values: Iterable[float | None]):
        finite = [v for v in values if v is not None]
        low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if high - low < 1e-12:
            low, high = low - 0.5, high + 0.5
        pad = 0.05 * (high - low)
        self.low, self.high = low - pad, high + pad

    def y(self, value: float) -> float:
        return TOP + PLOT_HEIGHT * (self.high - value) / (self.high - self.low)

    def at(self, value: float | None) -> float | None:
        return None if value is None else self.y(value)


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value (a missing one breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _polyline(points: Sequence[tuple[float, float]], css: str) -> str:
    return _svg("polyline", points=" ".join(f"{_f(x)},{_f(y)}" for x, y in points), class_=css)


def _labels(items: list[tuple[float, str, str]]) -> list[str]:
    """Labels to the right of the plot at their lines' heights, pushed apart so none overlap and
    none leaves the picture."""
    ordered = sorted(items, key=lambda item: item[0])
    ys: list[float] = []
    for y, _, _ in ordered:  # downwards, apart
        ys.append(max(y + 4, ys[-1] + LABEL_GAP if ys else -math.inf))
    limit = float(HEIGHT - 4)
    for i in reversed(range(len(ys))):  # back up from the bottom edge where they ran past it
        ys[i] = min(ys[i], limit if i == len(ys) - 1 else ys[i + 1] - LABEL_GAP)
    x = float(LEFT + PLOT_WIDTH + 6)
    return [
        _svg("text", escape(text), x=x, y=y, class_=css)
        for (_, text, css), y in zip(ordered, ys, strict=True)
    ]


def _frame(scale: _Scale, total: int, ticks: Iterable[int]) -> list[str]:
    """Axes, the value axis's ends, and the episode ticks (1-based)."""
    bottom = TOP + PLOT_HEIGHT
    parts = [
        _svg("line", x1=float(LEFT), x2=float(LEFT), y1=float(TOP), y2=float(bottom), class_="axis"),
        _svg(
            "line",
            x1=float(LEFT),
            x2=float(LEFT + PLOT_WIDTH),
            y1=float(bottom),
            y2=float(bottom),
            class_="axis",
        ),
    ]
    for value in (scale.low, scale.high):
        parts.append(_svg("text", _g(value), x=float(LEFT - 4), y=scale.y(value) + 4, text_anchor="end"))
    previous = -math.inf
    for episode in sorted(set(ticks)):
        x = episode_x(episode, total)
        if x - previous < 24:  # no two tick labels on top of each other
            continue
        previous = x
        parts.append(_svg("line", x1=x, x2=x, y1=float(bottom), y2=float(bottom + 4), class_="axis"))
        parts.append(_svg("text", str(episode), x=x, y=float(bottom + 15), text_anchor="middle"))
    parts.append(
        _svg(
            "text",
            "episodes",
            x=float(LEFT + PLOT_WIDTH / 2),
            y=float(bottom + 28),
            text_anchor="middle",
            class_="muted",
        )
    )
    return parts


def _wrap(svg_id: str, label: str, parts: list[str]) -> str:
    return (
        f'<svg class="{svg_id}" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<style>{STYLE}</style>{''.join(parts)}</svg>"
    )


def _hline(scale: _Scale, value: float, css: str, title: str) -> str:
    y = scale.y(value)
    return _svg(
        "line",
        _svg("title", escape(title)),
        x1=float(LEFT),
        x2=float(LEFT + PLOT_WIDTH),
        y1=y,
        y2=y,
        class_=css,
    )


def _design_numbers(result: TaskResult) -> tuple[float | None, float | None, bool]:
    design = result.design or {}
    higher = design.get("higher_is_better")
    return (
        _number(design.get("threshold")),
        _number(design.get("margin")),
        result.higher_is_better if higher is None else bool(higher),
    )


def trace_svg(result: TaskResult) -> str:
    """The running estimate and interval of a sequential gate, the band, and where it stopped."""
    trace = result.trace or {}
    estimate = [_number(v) for v in trace.get("estimate") or []]
    lows = [_number(v) for v in trace.get("low") or []]
    highs = [_number(v) for v in trace.get("high") or []]
    count = len(estimate)
    if count == 0:
        return ""
    lows = (lows + [None] * count)[:count]
    highs = (highs + [None] * count)[:count]
    # Long gates record their trace at up to a few hundred episodes: where each point was taken.
    episodes = [int(e) for e in trace.get("episode") or range(1, count + 1)][:count]
    episodes += list(range(len(episodes) + 1, count + 1))
    threshold, margin, higher = _design_numbers(result)
    margin = margin or 0.0
    stop = episodes[-1]  # the trace ends where the gate decided
    total = max(stop, result.episodes_run or 0)
    band = [] if threshold is None else [threshold - margin, threshold + margin, threshold]
    scale = _Scale([*estimate, *lows, *highs, *band])
    parts: list[str] = []

    if total > stop:  # played in the last round, after the decision: in the cache, not used
        left = episode_x(stop + 0.5, total)
        parts.append(
            _svg(
                "rect",
                _svg("title", f"episodes {stop + 1} to {total}: played, not used"),
                x=left,
                y=float(TOP),
                width=LEFT + PLOT_WIDTH - left,
                height=float(PLOT_HEIGHT),
                class_="unused",
            )
        )
    labels: list[tuple[float, str, str]] = []
    rules: list[str] = []  # the threshold and the band's edges: drawn over the interval
    if threshold is not None:
        if margin > 0:
            top, bottom = scale.y(threshold + margin), scale.y(threshold - margin)
            parts.append(
                _svg(
                    "rect",
                    _svg(
                        "title", f"threshold +- margin: [{_g(threshold - margin)}, {_g(threshold + margin)}]"
                    ),
                    x=float(LEFT),
                    y=top,
                    width=float(PLOT_WIDTH),
                    height=bottom - top,
                    class_="band",
                )
            )
            # Higher is better: passing rejects a mean at threshold - margin (the interval's lower end
            # rises above it), failing one at threshold + margin. Lower is better: the other way round.
            pass_edge, fail_edge = (
                (threshold - margin, threshold + margin)
                if higher
                else (threshold + margin, threshold - margin)
            )
            pass_text = f"pass: {'lower end above' if higher else 'upper end below'} {_g(pass_edge)}"
            fail_text = f"fail: {'upper end below' if higher else 'lower end above'} {_g(fail_edge)}"
            rules.append(_hline(scale, pass_edge, "edge pass-edge", pass_text))
            rules.append(_hline(scale, fail_edge, "edge fail-edge", fail_text))
            labels += [(scale.y(pass_edge), pass_text, "muted"), (scale.y(fail_edge), fail_text, "muted")]
        rules.append(_hline(scale, threshold, "threshold", f"threshold {_g(threshold)}"))
        labels.append((scale.y(threshold), f"threshold {_g(threshold)}", "muted"))

    shown = _thinned(count)

    def points(series: Sequence[float | None]) -> list[tuple[float, float | None]]:
        return [(episode_x(episodes[i], total), scale.at(series[i])) for i in shown]

    # The interval as a filled area where both ends are known, outlined by its ends.
    both = [low if high is not None else None for low, high in zip(lows, highs, strict=True)]
    for run in _segments([(float(i), both[i]) for i in shown]):
        indices = [int(i) for i, _ in run]
        upper = [(episode_x(episodes[i], total), scale.y(highs[i] or 0.0)) for i in indices]
        lower = [(episode_x(episodes[i], total), scale.y(lows[i] or 0.0)) for i in reversed(indices)]
        outline = " ".join(f"{_f(x)},{_f(y)}" for x, y in upper + lower)
        parts.append(_svg("polygon", points=outline, class_="interval"))
    for series in (lows, highs):
        parts.extend(_polyline(run, "bound") for run in _segments(points(series)))
    parts.extend(rules)
    parts.extend(_polyline(run, "estimate") for run in _segments(points(estimate)))

    # The stop: a vertical line at the deciding episode, the final interval and estimate on it.
    x = episode_x(stop, total)
    outcome = result.outcome or "undecided"
    verdict = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}.get(outcome, "stopped")
    stop_title = f"{verdict} at episode {stop}" + (f": {result.reason}" if result.reason else "")
    parts.append(
        _svg(
            "line",
            _svg("title", escape(stop_title)),
            x1=x,
            x2=x,
            y1=float(TOP - 4),
            y2=float(TOP + PLOT_HEIGHT),
            class_="stop",
            data_episode=stop,
        )
    )
    last_low, last_high, last_estimate = lows[-1], highs[-1], estimate[-1]
    if last_low is not None and last_high is not None:
        parts.append(
            _svg("line", x1=x - 4, x2=x + 4, y1=scale.y(last_low), y2=scale.y(last_low), class_="stop")
        )
        parts.append(
            _svg("line", x1=x - 4, x2=x + 4, y1=scale.y(last_high), y2=scale.y(last_high), class_="stop")
        )
    if last_estimate is not None:
        parts.append(_svg("circle", cx=x, cy=scale.y(last_estimate), r=3.0, class_="stop-point"))
    anchor = "end" if x > LEFT + PLOT_WIDTH * 0.6 else "start"
    parts.append(
        _svg(
            "text",
            f"{verdict} at episode {stop}",
            x=x + (-4 if anchor == "end" else 4),
            y=float(TOP - 8),
            text_anchor=anchor,
            class_=outcome if outcome in ("pass", "fail", "inconclusive") else "muted",
        )
    )
    labels.append((scale.y(last_estimate) if last_estimate is not None else TOP, "estimate", "muted"))
    parts.extend(_labels(labels))
    ticks = [1, stop, total]
    judged = "per-seed difference" if result.paired else "mean score"
    return _wrap(
        "pe-gate-plot pe-trace",
        f"running {judged} and interval over {stop} episodes against the threshold",
        [*_frame(scale, total, ticks), *parts],
    )


def differences(result: TaskResult) -> list[float | None]:
    """The per-seed differences the paired gate judged, by episode index (better > 0)."""
    sign = 1.0 if result.higher_is_better else -1.0
    out: list[float | None] = []
    for candidate, baseline in zip(result.episode_scores, result.baseline_episode_scores, strict=False):
        c, b = _number(candidate), _number(baseline)
        out.append(None if c is None or b is None else sign * (c - b) + 0.0)
    return out


def differences_svg(result: TaskResult) -> str:
    """The per-seed differences of a paired result against the difference threshold."""
    if not result.paired:
        return ""
    values = differences(result)
    if not values:
        return ""
    threshold, _, _ = _design_numbers(result)
    mean = _number(result.estimate)
    total = len(values)
    scale = _Scale([*values, 0.0, threshold, mean])
    parts: list[str] = [_hline(scale, 0.0, "zero", "0: as good as the baseline")]
    labels: list[tuple[float, str, str]] = [(scale.y(0.0), "as good as the baseline", "muted")]
    if threshold is not None:
        parts.append(_hline(scale, threshold, "threshold", f"difference threshold {_g(threshold)}"))
        labels.append((scale.y(threshold), f"threshold {_g(threshold)}", "muted"))
    if mean is not None:
        parts.append(_hline(scale, mean, "mean", f"mean difference {_g(mean)}"))
        labels.append((scale.y(mean), f"mean {_g(mean)}", "muted"))
    for i in _thinned(total):
        value = values[i]
        if value is None:
            continue
        css = "better" if value > 0 else "worse" if value < 0 else "same"
        title = _svg("title", f"episode {i + 1}: {_g(value)}")
        parts.append(_svg("circle", title, cx=episode_x(i + 1, total), cy=scale.y(value), r=2.5, class_=css))
    parts.extend(_labels(labels))
    return _wrap(
        "pe-gate-plot pe-differences",
        f"per-seed differences to the baseline over {total} episodes",
        [*_frame(scale, total, [1, total]), *parts],
    )
