"""The HTML report: pytest-html hooks, registered only when pytest-html writes a report.

- Workers (or the only process) attach each task's extras to its call report: its episode scores
  and the recorded episodes as films the embedded player animates. They travel to the xdist
  controller with the report, like the task's result.
- The controller adds result-table columns, the summary section (averages, category scores, a plot
  of scores against thresholds) with the player's script and style, and the environment table.

Everything is inline, so `--self-contained-html` (or the plain report) opens with no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources
from typing import TYPE_CHECKING, Any

from pytest_policyeval.reporting.documents import by_policy, scored, suite_summary, verdict_counts
from pytest_policyeval.reporting.gate_plot import differences_svg, trace_svg
from pytest_policyeval.reporting.plot import score_plot_svg
from pytest_policyeval.reporting.replays import mettascope_url
from pytest_policyeval.results import TaskResult, baselines_text, finite_number, number_text
from pytest_policyeval.scoring import averages, category_scores

if TYPE_CHECKING:
    from pytest_policyeval.reporting.film import Film

EPISODES_LISTED = 30  # per-episode scores written out under a task's row

COLUMNS = ("Policy", "Score", "Interval", "Threshold", "Episodes", "Evidence", "Verdict")
VERDICT_CLASS = {"PASS": "pe-pass", "FAIL": "pe-fail", "ERROR": "pe-fail"}


def asset(name: str) -> str:
    return resources.files("pytest_policyeval.reporting").joinpath("assets", name).read_text("utf-8")


_num = number_text


def _g(value: Any) -> str:
    value = finite_number(value)
    return "n/a" if value is None else f"{value + 0.0:.3g}"


def _verdict(result: TaskResult) -> str:
    """The outcome as a coloured word: PASS, FAIL, INCONCLUSIVE (counts as ...), ERROR or '-'."""
    text = result.outcome_text
    css = VERDICT_CLASS.get(text, "pe-inconclusive" if text.startswith("INCONCLUSIVE") else "")
    return f'<span class="{css}">{escape(text)}</span>' if css else escape(text)


def method_text(result: TaskResult) -> str:
    return ", ".join(part for part in (result.interval_method, result.interval_level) if part)


def evidence_text(result: TaskResult) -> str:
    """Both e-values and what each needs to decide, or why there are none."""
    design = result.design
    alpha, beta = finite_number(design.get("alpha")), finite_number(design.get("beta"))
    parts = []
    for side, rate, name in (("pass", alpha, "alpha"), ("fail", beta, "beta")):
        value = finite_number(result.evidence.get(side))
        if value is None:
            continue
        needs = f" (decides at 1/{name} = {1 / rate:.4g})" if rate else ""
        parts.append(f"to {side} {_g(value)}{needs}")
    if parts:
        return "e-values: " + "; ".join(parts)
    if result.error is not None or result.outcome is None:
        return "none"
    return f"none: a fixed gate ({result.gate}) weighs no evidence, it judges all its episodes at once"


def cached_count(result: TaskResult) -> int:
    return sum(1 for cached in result.episode_cached if cached)


def episodes_text(result: TaskResult) -> str:
    """Episodes used, and how many were run (played or read from the cache) and came from it."""
    used = result.num_episodes
    run = max(result.episodes_run, used)
    text = f"{used} used"
    if run > used:
        text += f" of {run} run (the {run - used} after the decision are kept in the episode cache, unused)"
    cached = cached_count(result)
    if cached:
        text += f"; {cached} of the used came from the episode cache"
    return text


FIXED_GATES = ("mean", "ci")  # the built-in gates that judge a fixed number of episodes once


def design_text(result: TaskResult) -> str:
    design = result.design
    if not design:
        return "none (the task has no result)"
    higher = design.get("higher_is_better", True)
    threshold, margin = finite_number(design.get("threshold")), finite_number(design.get("margin"))
    kind = design.get("kind", result.gate)
    parts = [f"{kind} gate"]
    if threshold is None:
        parts.append("no threshold (not gated)")  # no error rates: nothing is decided
    else:
        judged = "per-seed difference" if result.paired else "mean score"
        parts.append(f"{judged} {'>=' if higher else '<='} {threshold:g}")
        if margin and kind not in FIXED_GATES:  # a fixed gate has no band: it compares once
            parts.append(f"margin {margin:g} (band [{threshold - margin:g}, {threshold + margin:g}])")
        parts.extend(_rates_text(design, kind))
    low, high = finite_number(design.get("low")), finite_number(design.get("high"))
    if low is not None and high is not None:
        what = "difference range" if result.paired else "score range"  # a paired gate's are d's
        parts.append(f"{what} [{low:g}, {high:g}]")
    if design.get("kind") == "sequential" and threshold is not None:
        parts.append(f"cap {design.get('max_episodes')} episodes (at least {design.get('min_episodes')})")
    return "; ".join(parts)


def _rates_text(design: dict[str, Any], kind: str) -> list[str]:
    """The error rates a gate of this kind controls, and only those."""
    if kind == "mean":
        return ["no error rates (the sample mean against the threshold)"]
    alpha, beta, suite_beta = (finite_number(design.get(k)) for k in ("alpha", "beta", "suite_beta"))
    if kind == "ci":
        return [f"alpha {_g(alpha)} (false pass)", "false fail not controlled"]
    beta_text = f"beta {_g(beta)} (false fail)"
    gated = design.get("gated_tasks")
    if design.get("multiplicity") == "bonferroni" and suite_beta is not None and gated:
        beta_text += f" = suite beta {suite_beta:g} / {gated} gated tasks (bonferroni)"
    return [f"alpha {_g(alpha)} (false pass)", beta_text]


def estimate_text(result: TaskResult) -> str:
    interval = result.interval_ends
    method = method_text(result)
    shown = f"{interval} ({method})" if method else interval
    if result.paired:
        return (
            f"per-seed difference d = {_num(result.estimate)} {shown}; score {_num(result.score)} against "
            f"the baseline's {_num(result.baseline_score)} ({result.baseline_uri}) on the same seeds"
        )
    return f"mean score {_num(result.estimate)} {shown}; score {_num(result.score)}"


# -- per task (worker side) --------------------------------------------------------------------


def _gate_plots(result: TaskResult) -> list[str]:
    figures = []
    trace = trace_svg(result)
    if trace:
        figures.append(
            f"<figure>{trace}<figcaption>The running {'mean difference' if result.paired else 'mean score'} "
            "(line) and its anytime-valid interval (shaded) after each episode, against the threshold "
            "(dashed red) and the band threshold &#177; margin (yellow). The gate stops once the interval "
            "clears one edge of the band, or at its cap; grey: episodes played in the last round after the "
            "decision, not used.</figcaption></figure>"
        )
    diffs = differences_svg(result)
    if diffs:
        flipped = "" if result.higher_is_better else " (negated: lower is better)"
        figures.append(
            f"<figure>{diffs}<figcaption>Per-seed differences, candidate minus baseline{flipped}, by "
            "episode: above zero the candidate did better on that seed. The gate needs their mean above the "
            "difference threshold.</figcaption></figure>"
        )
    return figures


def task_html(result: TaskResult, films: Sequence[Film]) -> str:
    """A task's details under its row: the gate's outcome and evidence, its plots, the replays."""
    pairs = list(zip(result.episode_scores, result.seeds, strict=False))
    episodes = ", ".join(f"{score:.3g} (seed {seed})" for score, seed in pairs[:EPISODES_LISTED])
    if len(pairs) > EPISODES_LISTED:  # a long sequential gate: the plot shows them, the JSON has all
        episodes += f", ... and {len(pairs) - EPISODES_LISTED} more (all in the results JSON)"
    head = f"{_verdict(result)} {escape(result.task)} [{escape(result.policy_label)}]"
    lines = [f'<p class="pe-task__head">{head}</p>']
    if result.error:
        lines.append(f"<p class='pe-fail'>{escape(result.error)}</p>")
    rows = [
        ("Outcome", _verdict(result) + (f" &#8212; {escape(result.reason)}" if result.reason else "")),
        ("Guarantee", escape(result.guarantee or "-")),
        ("Design", escape(design_text(result))),
        ("Estimate", escape(estimate_text(result))),
        ("Evidence", escape(evidence_text(result))),
        ("Episodes", escape(episodes_text(result))),
    ]
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    lines.append(f'<table class="pe-gate"><tbody>{table}</tbody></table>')
    lines.extend(_gate_plots(result))
    if episodes:
        lines.append(f'<p class="pe-task__episodes">episode scores: {escape(episodes)}</p>')
    if films:
        players = "".join(
            f'<div class="pe-replay" data-film="{film.encode()}">{escape(film.title)}</div>' for film in films
        )
        lines.append(f'<div class="pe-replays">{players}</div>')
    return f'<div class="pe-task">{"".join(lines)}</div>'


def task_extras(result: TaskResult, films: Sequence[Film]) -> list[dict[str, Any]]:
    from pytest_html import extras

    items = [extras.html(task_html(result, films))]
    for index, url in enumerate(result.replay_urls):
        items.append(extras.url(url, name=f"replay {index}"))
        items.append(extras.url(mettascope_url(url), name=f"MettaScope {index}"))
    return items


def row_cells(result: TaskResult) -> list[str]:
    """The result table's cells for one task, in COLUMNS order."""
    score = _num(result.score)
    if result.paired:
        score += f' <small class="pe-small">d = {_num(result.estimate)}</small>'
    interval = result.interval_ends
    method = method_text(result)
    if method:
        interval += f'<br><small class="pe-small">{escape(method)}</small>'
    threshold = escape(result.threshold_text)
    threshold_title = (
        f' title="{escape(f"per-seed difference to the baseline {result.baseline_uri}")}"'
        if result.paired
        else ""
    )
    episodes = str(result.num_episodes)
    cached = cached_count(result)
    if cached:
        episodes += f' <small class="pe-small">({cached} cached)</small>'
    evidence, side = result.deciding_evidence
    label = side if side == result.outcome else f"to {side}"  # undecided: the larger e-value, for what
    return [
        f'<td class="col-policy" title="{escape(result.policy_uri)}">{escape(result.policy_label)}</td>',
        f'<td class="col-score">{score}</td>',
        f'<td class="col-ci" title="{escape(method)}">{interval}</td>',
        f'<td class="col-threshold"{threshold_title}>{threshold}</td>',
        f'<td class="col-episodes" title="{escape(episodes_text(result))}">{episodes}</td>',
        f'<td class="col-evidence" title="{escape(evidence_text(result))}">'
        + ("-" if evidence is None else f"{_g(evidence)} <small class='pe-small'>({label})</small>")
        + "</td>",
        f'<td class="col-verdict">{_verdict(result)}</td>',
    ]


# -- summary (controller) ----------------------------------------------------------------------


def _verdict_cell(verdict: dict[str, Any]) -> str:
    outcome = verdict.get("outcome")
    if not outcome:
        return '<td title="no task has a threshold">-</td>'
    css = {"pass": "pe-pass", "fail": "pe-fail"}.get(outcome, "pe-inconclusive")
    counts = verdict_counts(verdict)
    title = f"multiplicity {verdict['multiplicity']}: {verdict['guarantee']}"
    return (
        f'<td class="pe-suite-verdict" title="{escape(title)}"><span class="{css}">{escape(outcome.upper())}'
        f'</span><br><small class="pe-small">{escape(counts)}</small></td>'
    )


def _iqm_cell(iqm: dict[str, Any]) -> str:
    if iqm.get("iqm") is None:
        return f'<td class="pe-num" title="{escape(str(iqm.get("method", "")))}">n/a</td>'
    interval = f" [{_num(iqm['low'])}, {_num(iqm['high'])}]" if iqm.get("low") is not None else ""
    return (
        f'<td class="pe-num pe-iqm" title="{escape(str(iqm.get("method", "")))}">{_num(iqm["iqm"])}'
        f'<small class="pe-small">{interval}</small></td>'
    )


def _outcome_counts(group: Sequence[TaskResult]) -> tuple[int, int, int, int, int]:
    """Tasks by what their gate said: pass, fail, inconclusive, errors, and tasks without a gate."""
    outcomes = [r.outcome if r.error is None else "error" for r in group]
    return (
        outcomes.count("pass"), outcomes.count("fail"), outcomes.count("inconclusive"),
        outcomes.count("error"), outcomes.count(None),
    )  # fmt: skip


def summary_html(results: Sequence[TaskResult], run: dict[str, Any] | None = None) -> str:
    rows, categories, notes = [], [], []
    groups = by_policy(results)
    for uri, group in groups.items():
        scores = scored(group)
        avg_sim, avg_cat = averages(scores)
        summary = suite_summary(group, run)
        verdict, iqm = summary["suite_verdict"], summary["iqm_normalised_score"]
        # Each task in one column, by its gate's outcome, as the verdict's tally counts them (an
        # inconclusive task counted as fail fails its test, but its gate did not fail it).
        counts = "".join(f'<td class="pe-num">{n}</td>' for n in _outcome_counts(group))
        numbers = "".join(f'<td class="pe-num">{n}</td>' for n in (_num(avg_sim), _num(avg_cat)))
        label = escape(group[0].policy_label)
        baseline = baselines_text(list(group))
        against = f'<br><small class="pe-small">against {escape(baseline)}</small>' if baseline else ""
        rows.append(
            f"<tr><td>{label}</td><td>{escape(uri)}{against}</td>{numbers}{_iqm_cell(iqm)}"
            f"{_verdict_cell(verdict)}{counts}</tr>"
        )
        if verdict.get("outcome"):
            notes.append(
                f"<li>{label}: suite verdict {escape(verdict['outcome'].upper())}; multiplicity "
                f"{escape(verdict['multiplicity'])}: {escape(verdict['guarantee'])}.</li>"
            )
        if iqm.get("iqm") is not None:
            notes.append(f"<li>{label}: IQM interval by {escape(str(iqm['method']))}.</li>")
        for category, score in category_scores(scores).items():
            categories.append((group[0].policy_label, category, score))
    category_rows = "".join(
        f'<tr><td>{escape(label)}</td><td>{escape(category)}</td><td class="pe-num">{_num(score)}</td></tr>'
        for label, category, score in categories
    )
    return (
        '<section id="policyeval-summary" class="pe-summary"><h2>Policy evaluation</h2>'
        "<table><thead><tr><th>Policy</th><th>URI</th><th>Average simulation score</th>"
        "<th>Average category score</th><th>IQM of normalised scores</th><th>Suite verdict</th>"
        "<th>Pass</th><th>Fail</th><th>Inconclusive</th><th>Errors</th><th>Not gated</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        + (f'<ul class="pe-notes">{"".join(notes)}</ul>' if notes else "")
        + "<table><thead><tr><th>Policy</th><th>Category</th><th>Category score</th></tr></thead>"
        f"<tbody>{category_rows}</tbody></table>"
        f"<figure>{score_plot_svg(results)}<figcaption>Each task's score per policy (bars, with the gate's "
        "interval where it is on the score) against its threshold (dashed red). Each row has its own scale."
        "</figcaption></figure></section>"
    )
