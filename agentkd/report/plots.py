"""The report's plots, each drawn from ReportData as inline SVG, or a sentence saying why it cannot be drawn."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from agentkd.evaluate.metrics import wilson_interval
from agentkd.report.data import COLLECTION, Evaluation, ReportData
from agentkd.report.svg import (
    BOTTOM,
    TEACHER_COLOUR,
    TOP,
    Chart,
    H,
    colour,
    fmt_number,
    fmt_percent,
    fmt_usd,
    nice_ticks,
)

TEACHER_ROLES = ("teacher", "reference")


@dataclass
class Figure:
    """One plot: its SVG, or a note saying what is missing for it; `caption` explains how to read it."""

    key: str
    title: str
    svg: str | None = None
    note: str = ""
    caption: str = ""


def figures(data: ReportData) -> list[Figure]:
    return [pareto(data), teacher_share(data), break_even_curve(data), success_by_kind(data)]


# Improvement rounds ----------------------------------------------------------------------------------------------
def rounds_figure(data: ReportData) -> Figure:
    """Success of the student and the cascade, and the cascade's teacher share, per improvement round."""
    title = "Success and teacher share per round"
    rows = data.rounds
    if not rows:
        return Figure("rounds", title, note="this run records no improvement rounds: `agentkd improve --run RUN`")
    last = max(int(r["round"]) for r in rows)
    chart = Chart(title, "round (0 = the run itself)", "test success / teacher share", (0.0, float(max(last, 1))),
                  (0.0, 1.0), y_format=fmt_percent, y_ticks=[0, 0.25, 0.5, 0.75, 1.0],
                  x_ticks=_integer_ticks(0, max(last, 1)), x_format=lambda v: f"{v:.0f}", kind="rounds")
    series = (("student_success", "student success", colour(0), False),
              ("cascade_success", "cascade success", colour(1), False),
              ("cascade_teacher_share", "cascade teacher share of steps", TEACHER_COLOUR, True))
    for key, label, hue, dashed in series:
        points, tips = [], []
        for row in rows:
            value = row.get(key)
            if value is None:
                continue
            points.append((float(row["round"]), float(value)))
            ci = row.get(key.replace("_success", "_ci95")) if key.endswith("_success") else None
            interval = f", 95% CI {ci[0]:.0%}–{ci[1]:.0%}" if isinstance(ci, list) and len(ci) == 2 else ""
            tips.append(f"round {row['round']}: {label} {float(value):.0%}{interval}; "
                        f"{row.get('teacher_episodes')} teacher episodes in its training data")
        if points:
            chart.polyline(points, hue, label, dashed=dashed, tips=tips)
    caption = ("Each round probes the previous student on unseen train tasks, collects the teacher where it failed, "
               "trains again and evaluates on the same test tasks; hover a point for its interval and the teacher "
               "episodes the round's student was trained on.")
    return Figure("rounds", title, chart.render(), caption=caption)


def training_figures(data: ReportData) -> list[Figure]:
    points = data.train_points
    if not points:
        note = ("no training log (RUN/student/train_log.jsonl): train a student with `agentkd train`"
                if not data.student_config else "the training log has no loss entries yet")
        return [Figure("loss", "Training loss", note=note)]
    out = [_series_figure("loss", "Training loss", points, "loss", "loss", fmt_number)]
    if any("learning_rate" in p for p in points):
        out.append(_series_figure("lr", "Learning rate", points, "learning_rate", "learning rate", lambda v: f"{v:.0e}" if v else "0"))
    rate_key = next((k for k in ("tokens_per_s", "train_tokens_per_second") if any(k in p for p in points)), None)
    if rate_key:
        out.append(_series_figure("tokens", "Training speed", points, rate_key, "tokens / s", fmt_number))
    dpo = data.dpo_points
    if dpo:
        out.append(_series_figure("dpo-loss", "Preference (DPO) stage: loss", dpo, "loss", "DPO loss", fmt_number))
        if any("rewards/margins" in p for p in dpo):
            out.append(_series_figure("dpo-margin", "Preference (DPO) stage: reward margin", dpo, "rewards/margins",
                                      "chosen − rejected reward", fmt_number))
    return out


def _series_figure(key: str, title: str, points: list[dict[str, Any]], field: str, label: str, fmt: Any) -> Figure:
    series = [(float(p["step"]), float(p[field])) for p in points if isinstance(p.get(field), (int, float))]
    if not series:
        return Figure(key, title, note=f"no {label} in the training log")
    xs, ys = [s[0] for s in series], [s[1] for s in series]
    chart = Chart(title, "optimizer step", label, (min(0.0, min(xs)), max(xs)), (min(0.0, min(ys)), max(ys)),
                  y_format=fmt, kind=f"train-{key}")
    chart.polyline(series, colour(0), label, dots=len(series) <= 60)
    return Figure(key, title, chart.render())


# Pareto: success against cost --------------------------------------------------------------------------------
def pareto(data: ReportData) -> Figure:
    title = "Success against cost per episode"
    reported = [e for e in data.evaluations if e.report]
    if not reported:
        return Figure("pareto", title, note="no finished evaluation: run `agentkd eval --run RUN --policy teacher` "
                                            "(and student, cascade) to compare policies")
    costs = [float(e.report.get("cost_per_episode_usd") or 0.0) for e in reported]  # type: ignore[union-attr]
    by_cost = any(c > 0 for c in costs)
    if by_cost:
        xs, x_label, x_fmt = costs, "$ per episode", fmt_usd
        caption = ("Each evaluated policy at its mean cache-aware $ per episode (prices under the evaluations "
                   "table), with the 95% interval of its success rate. "
                   "The dashed line joins the policies no other beats on both axes (the Pareto front).")
    else:
        xs = [_tokens_per_episode(e.report) for e in reported]  # type: ignore[arg-type]
        x_label, x_fmt = "model tokens per episode (no $ cost recorded)", fmt_number
        caption = ("Every recorded cost is $0 (prices of zero, or evaluations written before agentkd priced local "
                   "models and counted the reference teacher's tokens), so policies are placed by the model tokens "
                   "they spend per episode; `agentkd eval --teacher-price` prices them. Bars: 95% interval of the "
                   "success rate.")
    chart = Chart(title, x_label, "success rate", (0.0, max(xs) or 1.0), (0.0, 1.0), x_format=x_fmt,
                  y_format=fmt_percent, y_ticks=[0, 0.25, 0.5, 0.75, 1.0], kind="pareto")
    points = []
    for n, (evaluation, x) in enumerate(zip(reported, xs)):
        report = evaluation.report or {}
        rate = float(report.get("success_rate") or 0.0)
        lo, hi = (report.get("success_ci95") or (rate, rate))[:2]
        is_teacher = _is_teacher(evaluation, data)
        hue = TEACHER_COLOUR if is_teacher else colour(n)
        px, py = chart.x(x), chart.y(rate)
        tip = (f"{evaluation.name}: success {rate:.0%} (95% CI {lo:.0%}–{hi:.0%}, {report.get('successes')}/"
               f"{report.get('episodes')}), {x_fmt(x)} per episode")
        chart.add(f'<line class="ci" x1="{px:.1f}" x2="{px:.1f}" y1="{chart.y(lo):.1f}" y2="{chart.y(hi):.1f}" '
                  f'stroke="{hue}" stroke-width="2"/>')
        if is_teacher:
            mark = (f'<path class="point teacher" d="M{px:.1f},{py - 8:.1f} L{px + 8:.1f},{py:.1f} L{px:.1f},{py + 8:.1f} '
                    f'L{px - 8:.1f},{py:.1f} Z" fill="{hue}"><title>{escape(tip)}</title></path>')
        else:
            mark = f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{hue}"><title>{escape(tip)}</title></circle>'
        chart.add(mark)
        label = f"{evaluation.name} (teacher)" if is_teacher and evaluation.name != "teacher" else evaluation.name
        anchor = "end" if px > 400 else "start"
        dx = -10 if anchor == "end" else 10
        chart.add(f'<text class="pointlabel" x="{px + dx:.1f}" y="{py - 8:.1f}" text-anchor="{anchor}">{escape(label)}</text>')
        points.append((x, rate))
    front = _pareto_front(points)
    if len(front) > 1:
        chart.add('<polyline class="front" points="' + " ".join(f"{chart.x(a):.1f},{chart.y(b):.1f}" for a, b in front)
                  + '" fill="none" stroke="#888" stroke-dasharray="4 4"><title>Pareto front</title></polyline>')
    return Figure("pareto", title, chart.render(), caption=caption)


def _tokens_per_episode(report: dict[str, Any]) -> float:
    roles = report.get("per_episode_by_role") or {}
    return float(sum((r.get("prompt_tokens") or 0) + (r.get("completion_tokens") or 0) for r in roles.values()))


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (lower) and success (higher), by increasing cost."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _is_teacher(evaluation: Evaluation, data: ReportData) -> bool:
    """The evaluation of the run's teacher: named `teacher`, or its policy spec is the one in run.json."""
    if evaluation.name == "teacher":
        return True
    spec = (evaluation.report or {}).get("details", {}).get("policy_spec")
    return spec is not None and spec == data.config.get("specs", {}).get("teacher")


# Teacher share by step index ----------------------------------------------------------------------------------
def teacher_share(data: ReportData) -> Figure:
    title = "Teacher share of steps by step index (cascade)"
    cascades = [e for e in data.evaluations if e.is_cascade and e.stats.roles_by_step]
    if not cascades:
        return Figure("share", title, note="no cascade evaluation in this run: `agentkd eval --run RUN --policy cascade`")
    last = max(max(e.stats.roles_by_step) for e in cascades)
    chart = Chart(title, "step (1 = first step of the episode)", "teacher share of steps", (1.0, float(last + 1)),
                  (0.0, 1.0), y_format=fmt_percent, y_ticks=[0, 0.25, 0.5, 0.75, 1.0],
                  x_ticks=_integer_ticks(1, last + 1), x_format=lambda v: f"{v:.0f}", kind="share")
    for n, evaluation in enumerate(cascades):
        series, tips = [], []
        for index in sorted(evaluation.stats.roles_by_step):
            roles = evaluation.stats.roles_by_step[index]
            total = sum(roles.values())
            teacher = sum(roles.get(r, 0) for r in TEACHER_ROLES)
            series.append((float(index + 1), teacher / total))
            tips.append(f"{evaluation.name}, step {index + 1}: teacher took {teacher} of {total} steps")
        chart.polyline(series, colour(n + 1), evaluation.name, tips=tips)
    caption = ("For each step position, the fraction of the cascade's steps that went to the teacher (the student's "
               "samples disagreed). Fewer episodes reach late steps: hover a point for its counts.")
    return Figure("share", title, chart.render(), caption=caption)


def _integer_ticks(lo: int, hi: int) -> list[float]:
    ticks = [t for t in nice_ticks(lo, hi, 8) if float(t).is_integer() and lo <= t <= hi]
    return ticks or [float(lo), float(hi)]


# Break-even ------------------------------------------------------------------------------------------------------
def break_even_curve(data: ReportData) -> Figure:
    title = "Break-even: cumulative cost over episodes"
    cascades = [e for e in data.evaluations if e.report and e.report.get("break_even")]
    if not cascades:
        return Figure("breakeven", title, note="no cascade evaluation with a break-even figure: "
                                               "`agentkd eval --run RUN --policy cascade` computes one")
    usable = [e for e in cascades if (e.report or {})["break_even"].get("episodes")]
    if not usable:
        notes = "; ".join(f"{e.name}: {(e.report or {})['break_even'].get('note') or 'no saving'}" for e in cascades)
        return Figure("breakeven", title, note=f"no break-even point: {notes}")
    first = usable[0].report["break_even"]  # type: ignore[index]
    horizon = max(10.0, 2.0 * max(float(e.report["break_even"]["episodes"]) for e in usable))  # type: ignore[index]
    teacher_cost = float(first["teacher_cost_per_episode_usd"])
    top = max([teacher_cost * horizon] + [float(e.report["break_even"]["upfront_usd"]) +  # type: ignore[index]
                                          float(e.report["break_even"]["policy_cost_per_episode_usd"]) * horizon  # type: ignore[index]
                                          for e in usable])
    chart = Chart(title, "episodes served", "cumulative $", (0.0, horizon), (0.0, top), y_format=fmt_usd, kind="breakeven")
    chart.polyline([(0.0, 0.0), (horizon, teacher_cost * horizon)], TEACHER_COLOUR,
                   f"teacher only ({fmt_usd(teacher_cost)}/episode)", dots=False)
    for n, evaluation in enumerate(usable):
        be = evaluation.report["break_even"]  # type: ignore[index]
        upfront, cost, episodes = float(be["upfront_usd"]), float(be["policy_cost_per_episode_usd"]), float(be["episodes"])
        chart.polyline([(0.0, upfront), (horizon, upfront + cost * horizon)], colour(n + 1),
                       f"collection + {evaluation.name}", dots=False)
        px, py = chart.x(episodes), chart.y(upfront + cost * episodes)
        chart.add(f'<line class="marker" x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="{colour(n + 1)}" '
                  f'stroke-dasharray="3 3"/><circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{colour(n + 1)}">'
                  f"<title>{escape(evaluation.name)} pays back after {episodes:,.1f} episodes</title></circle>"
                  f'<text class="pointlabel" x="{px + 6:.1f}" y="{py + 16:.1f}">{episodes:,.0f} episodes</text>')
    caption = ("Serving every episode with the teacher against paying once for the collected teacher trajectories "
               "and then serving with the distilled policy, at cache-aware prices; the lines cross at the break-even "
               "episode count.")
    return Figure("breakeven", title, chart.render(), caption=caption)


# Success by task kind -------------------------------------------------------------------------------------------
def success_by_kind(data: ReportData) -> Figure:
    title = "Success by task kind"
    sources = [(COLLECTION, data.collection)] + [(e.name, e.stats) for e in data.evaluations]
    sources = [(name, stats) for name, stats in sources if stats.by_kind]
    if not sources:
        return Figure("kinds", title, note="the tasks carry no kind (Task.metadata['kind'])")
    kinds = sorted({k for _, stats in sources for k in stats.by_kind})
    chart = Chart(title, "task kind", "success rate", (0.0, float(len(kinds))), (0.0, 1.0), y_format=fmt_percent,
                  y_ticks=[0, 0.25, 0.5, 0.75, 1.0], x_ticks=[i + 0.5 for i in range(len(kinds))], x_tick_labels=kinds,
                  kind="kinds")
    slot = 1.0 / (len(sources) + 1)
    for n, (name, stats) in enumerate(sources):
        hue = colour(n)
        label = "collection (teacher, train split)" if name == COLLECTION else name
        chart.legend.append((label, hue, "box"))
        for k, kind in enumerate(kinds):
            if kind not in stats.by_kind:
                continue
            ok, total = stats.by_kind[kind]
            rate = ok / total
            lo, hi = wilson_interval(ok, total)
            left = k + slot / 2 + n * slot
            x0, x1 = chart.x(left), chart.x(left + slot * 0.9)
            mid = (x0 + x1) / 2
            chart.add(f'<rect class="bar" x="{x0:.1f}" y="{chart.y(rate):.1f}" width="{x1 - x0:.1f}" '
                      f'height="{chart.y(0) - chart.y(rate):.1f}" fill="{hue}"><title>{escape(label)}, {escape(kind)}: '
                      f"{ok}/{total} ({rate:.0%}, 95% CI {lo:.0%}–{hi:.0%})</title></rect>"
                      f'<line class="ci" x1="{mid:.1f}" x2="{mid:.1f}" y1="{chart.y(lo):.1f}" y2="{chart.y(hi):.1f}" '
                      f'stroke="#333"/>')
    caption = "Success rate per task kind for the teacher's collection and each evaluation, with 95% intervals."
    return Figure("kinds", title, chart.render(), caption=caption)
