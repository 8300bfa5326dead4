"""The report page: one self-contained HTML file (inline CSS, inline SVG plots, one inline script, the data).

The trajectory list is one small JSON block of rows; each trajectory's steps sit in JSON blocks of
`CHUNK` trajectories that the script parses only when one of them is opened, and the list renders one
page of rows at a time, so a run of 10,000 trajectories opens as fast as a small one.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Iterable

from agentkd.evaluate.metrics import wilson_interval
from agentkd.evaluate.prices import Price
from agentkd.report.data import COLLECTION, ROW_COLUMNS, ReportData, SourceStats
from agentkd.report.plots import Figure, figures, rounds_figure, training_figures
from agentkd.report.svg import fmt_usd
from agentkd.version import __version__

ASSETS = Path(__file__).parent
CHUNK = 200
"""Trajectories per detail block (one block is parsed when one of its trajectories is opened)."""
PAGE_ROWS = 50
"""Rows the viewer shows per page."""


def render(data: ReportData) -> str:
    """The whole page as one string."""
    name = data.run.resolve().name
    sections = [
        _overview(data),
        _collection(data),
        _training(data),
        _evaluations(data),
        _plots(data),
        _viewer(data),
    ]
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
         "script-src 'unsafe-inline'; img-src data:\">"),
        f"<title>agentkd report: {escape(name)}</title><style>{_asset('report.css')}</style></head><body>",
        f"<header><h1>agentkd report <span class=\"run\">{escape(name)}</span></h1>",
        ("<nav><a href=\"#overview\">overview</a><a href=\"#collection\">collection</a><a href=\"#training\">training</a>"
         "<a href=\"#evaluations\">evaluations</a><a href=\"#plots\">plots</a><a href=\"#trajectories\">trajectories</a>"
         "</nav>"),
        "</header><main>",
        *sections,
        (f"</main><footer>written by agentkd {escape(__version__)} at {_now()} from {escape(str(data.run.resolve()))}; "
         "re-run <code>agentkd report</code> after more evaluations to refresh it.</footer>"),
        _data_blocks(data),
        f"<script>{_asset('viewer.js')}</script></body></html>\n",
    ])


def write(data: ReportData, out: Path) -> Path:
    """Write the page atomically (a browser reloading it never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(out)
    return out


# sections -----------------------------------------------------------------------------------------------------
def _overview(data: ReportData) -> str:
    config = data.config
    identity, details, specs = config.get("identity", {}), config.get("details", {}), config.get("specs", {})
    env = specs.get("env") or {"target": identity.get("env")}
    env_text = str(env.get("given") or env.get("target"))
    if env.get("given") and env.get("target") and env["given"] != env["target"]:
        env_text += f" ({env['target']})"
    if env.get("kwargs"):
        env_text += " " + ", ".join(f"{k}={v!r}" for k, v in env["kwargs"].items())
    if identity.get("env_version"):
        env_text += f", version {identity['env_version']}"
    student = data.student_config or {}
    student_text = "none trained (run `agentkd train`)"
    if student:
        student_text = (f"{student.get('student')} fine-tuned: LoRA r={student.get('lora_r')}, {student.get('epochs')} "
                        f"epochs, lr {student.get('lr')}, {student.get('scheduler')} schedule")
        if not data.has_student:
            student_text += " (training not finished: no merged weights)"
        if data.dpo_points:
            student_text += "; then a preference (DPO) stage (RUN/student-dpo)"
    resumed = config.get("resumed_at") or []
    rows = [
        ("run folder", _code(str(data.run.resolve()))),
        ("environment", escape(env_text)),
        ("teacher", escape(str(identity.get("teacher"))) + " " + _spec(specs.get("teacher"))),
        ("student", escape(student_text)),
        ("collected on", escape(f"split {identity.get('split', details.get('split'))}")),
        ("created", escape(_date(config.get("created_at")))
         + (escape(f"; resumed {len(resumed)}×, last {_date(resumed[-1])}") if resumed else "")),
        ("demonstration store", "yes (RUN/index)" if data.has_index else "not built (`agentkd index`)"),
        ("versions", escape(", ".join(f"{k} {v}" for k, v in (details.get("versions") or {}).items()) or "not recorded")),
    ]
    return _section("overview", "Run", _dl(rows))


def _collection(data: ReportData) -> str:
    stats = data.collection
    if not stats.episodes:
        return _section("collection", "Collection", "<p class=\"empty\">no trajectories collected yet</p>")
    rows = _stats_rows(stats, data.prices)
    filters = data.student_data
    if filters:
        dropped = filters.get("dropped") or {}
        text = str(filters.get("summary", ""))
        if dropped:
            text += "; dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items())
        text += f"; {filters.get('examples')} training examples, {filters.get('tokens')} tokens " \
                f"({filters.get('trained_tokens')} trained on)"
        rows.append(("training filters", escape(text)))
    else:
        rows.append(("training filters", "not applied yet (`agentkd train` applies them)"))
    if data.failed_episodes:
        rows.append(("set apart", escape(f"{data.failed_episodes} failed episodes in RUN/failed.jsonl")))
    if data.preference_pairs:
        rows.append(("preference pairs", escape(f"{data.preference_pairs} in RUN/preferences.jsonl "
                                                "(`agentkd train --stage dpo`)")))
    return _section("collection", "Collection (the teacher's trajectories)", _dl(rows))


def _stats_rows(stats: SourceStats, prices: dict[str, Price] | None = None) -> list[tuple[str, str]]:
    n = stats.episodes
    prices = prices or {}
    if stats.by_role and all(role in prices for role in stats.by_role):  # priced as the evaluations were
        aware = sum(prices[role].dollars(u) for role, u in stats.by_role.items())
        at_list = sum(prices[role].list_dollars(u) for role, u in stats.by_role.items())
        cost = (f"{fmt_usd(aware / n)} per episode cache-aware ({fmt_usd(at_list / n)} at list prices); "
                f"{fmt_usd(aware)} in all, priced as the evaluations below")
    else:
        cost = f"{fmt_usd(stats.cost_usd)} in all, {fmt_usd(stats.cost_usd / n)} per episode (as recorded)"
    cached = sum(u.cached_prompt_tokens for u in stats.by_role.values())
    lo, hi = wilson_interval(stats.successes, n)
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(stats.statuses.items()))
    return [
        ("episodes", str(n)),
        ("success", escape(f"{stats.successes}/{n} ({stats.success_rate:.0%}, 95% CI {lo:.0%}–{hi:.0%})")),
        ("steps", escape(f"{stats.steps} ({stats.steps / n:.2f} per episode), {stats.parse_errors} parse errors")),
        ("status", escape(statuses)),
        ("tokens", escape(f"{stats.prompt_tokens:,} prompt ({cached:,} read from the cache) + "
                          f"{stats.completion_tokens:,} completion")),
        ("cost", escape(cost)),
        ("time", escape(f"{stats.seconds / n:.2f} s per episode")),
    ]


def _training(data: ReportData) -> str:
    summary = data.train_summary
    parts = []
    if summary:
        facts = []
        if summary.get("train_tokens") is not None:
            facts.append(("tokens trained", f"{summary['train_tokens']:,}"))
        if summary.get("train_seconds") is not None:
            facts.append(("training time", f"{summary['train_seconds']} s"))
        if summary.get("tokens_per_s") is not None:
            facts.append(("speed", f"{summary['tokens_per_s']} tokens/s"))
        if summary.get("train_loss") is not None:
            facts.append(("mean loss", f"{summary['train_loss']:.4f}"))
        points = data.train_points
        if points:
            facts.append(("final loss", f"{points[-1]['loss']:.4f} at step {points[-1]['step']}"))
        parts.append(_dl([(k, escape(str(v))) for k, v in facts]))
    parts.append(_figure_grid(training_figures(data)))
    return _section("training", "Training", "".join(parts))


def _evaluations(data: ReportData) -> str:
    if not data.evaluations:
        return _section("evaluations", "Evaluations", "<p class=\"empty\">no evaluation yet: "
                                                      "<code>agentkd eval --run RUN --policy teacher</code></p>")
    head = ("evaluation", "policy", "episodes", "success (95% CI)", "mean steps", "$ / episode", "list $ / episode",
            "x cheaper (list)", "tokens / episode", "student share of steps", "deferral rate", "break-even",
            "errors · step limit", "s / episode")
    body = []
    for e in data.evaluations:
        r = e.report
        if r is None:
            body.append(f"<tr><td>{escape(e.name)}</td><td colspan=\"{len(head) - 1}\">not finished: "
                        f"{e.stats.episodes} trajectories so far</td></tr>")
            continue
        lo, hi = (r.get("success_ci95") or (0, 0))[:2]
        be = r.get("break_even") or {}
        be_text = f"{be['episodes']:,.1f} episodes" if be.get("episodes") else (be.get("note") or "—")
        tokens = sum((v.get("prompt_tokens") or 0) + (v.get("completion_tokens") or 0)
                     for v in (r.get("per_episode_by_role") or {}).values())
        deferral = r.get("deferral_rate")
        at_list = r.get("list_cost_per_episode_usd")
        versus = r.get("versus_teacher") or {}
        cheaper = f"{_times(versus.get('cheaper'))} ({_times(versus.get('cheaper_at_list'))})" if versus else "—"
        cells = [e.name, str(r.get("details", {}).get("policy", r.get("policy", ""))), str(r.get("episodes")),
                 f"{r.get('success_rate', 0):.0%} ({lo:.0%}–{hi:.0%})", f"{r.get('mean_steps', 0):.2f}",
                 fmt_usd(float(r.get("cost_per_episode_usd") or 0)),
                 "—" if at_list is None else fmt_usd(float(at_list)), cheaper, f"{tokens:,.0f}",
                 f"{r.get('student_share_of_steps', 0):.0%}", "—" if deferral is None else f"{deferral:.0%}", be_text,
                 f"{r.get('errors', 0)} · {r.get('step_limit', 0)}", f"{r.get('mean_episode_latency_s', 0):.1f}"]
        spec = r.get("details", {}).get("policy_spec") or (e.settings or {}).get("identity", {}).get("policy")
        tips = ["", json.dumps(spec) if spec else ""] + [""] * (len(cells) - 2)
        body.append("<tr>" + "".join(f"<td title=\"{escape(t)}\">{escape(c)}</td>" if t else f"<td>{escape(c)}</td>"
                                     for c, t in zip(cells, tips)) + "</tr>")
    table = ("<div class=\"scroll\"><table class=\"evals\"><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(body) + "</tbody></table></div>")
    return _section("evaluations", "Evaluations", table + _price_note(data))


def _price_note(data: ReportData) -> str:
    """What the $ columns mean and the price of each role, as the evaluations recorded them."""
    prices, counted = data.prices, data.counted_by
    if not prices:
        return ""
    items = []
    for role in sorted(prices, key=lambda r: (r != "teacher", r)):
        text = f"{role}: {prices[role].describe()}"
        if role in counted:
            text += f"; its tokens counted with {counted[role]}, as a model {role} would read and write them"
        items.append(f"<li>{escape(text)}</li>")
    return ("<p class=\"note\">$ / episode is cache-aware: prompt tokens read from the server's prompt cache are billed "
            "at the cache-read price; list $ bills every prompt token at the list price. x cheaper (at list prices in "
            "brackets) and break-even (collection $ ÷ $ saved per episode) are against the teacher. Prices, $ per 1M "
            f"tokens:</p><ul class=\"note\">{''.join(items)}</ul>")


def _times(ratio: Any) -> str:
    return "—" if ratio is None else f"{float(ratio):.2f}x" if float(ratio) < 10 else f"{float(ratio):.1f}x"


def _plots(data: ReportData) -> str:
    rounds = rounds_figure(data)
    extra = _figure_grid([rounds]) if rounds.svg else f"<p class=\"empty\">{escape(rounds.note)}</p>"
    return _section("plots", "Plots", _figure_grid(figures(data)) + extra)


def _figure_grid(items: Iterable[Figure]) -> str:
    out = []
    for f in items:
        body = f.svg if f.svg else f"<div class=\"empty plot-missing\"><b>{escape(f.title)}</b><br>{escape(f.note)}</div>"
        caption = f"<figcaption>{escape(f.caption)}</figcaption>" if f.caption and f.svg else ""
        out.append(f"<figure class=\"figure\" id=\"fig-{escape(f.key)}\">{body}{caption}</figure>")
    return "<div class=\"figures\">" + "".join(out) + "</div>"


def _viewer(data: ReportData) -> str:
    total = len(data.rows)
    return _section("trajectories", f"Trajectories ({total:,})", f"""
<div class="filters" role="search">
  <label>source <select id="f-source"><option value="">all</option></select></label>
  <label>result <select id="f-success"><option value="">all</option><option value="1">success</option><option value="0">failure</option></select></label>
  <label>status <select id="f-status"><option value="">all</option></select></label>
  <label>kind <select id="f-kind"><option value="">all</option></select></label>
  <label>deferred <select id="f-deferred"><option value="">all</option><option value="1">with deferred steps</option><option value="0">none deferred</option></select></label>
  <label>search <input id="f-text" type="search" placeholder="task id, question, policy"></label>
  <span id="count" class="count"></span>
</div>
<div class="viewer">
  <div class="list">
    <table class="rows" id="rows" data-total="{total}"><thead><tr><th>#</th><th>source</th><th>task</th><th>kind</th>
    <th>result</th><th>status</th><th title="steps (teacher · student)">steps (T·S)</th><th>deferred</th>
    <th title="$ when recorded, else model tokens">cost</th></tr></thead><tbody></tbody></table>
    <div class="pager"><button id="prev" type="button">◀ previous</button><span id="page"></span>
    <button id="next" type="button">next ▶</button></div>
  </div>
  <div class="detail" id="detail"><p class="empty">Open a trajectory to read it step by step: who acted, the
  thought, the code, the observation, the student's candidates and their vote.</p></div>
</div>
<noscript><p class="empty">The trajectory viewer needs JavaScript; the plots above do not.</p></noscript>""")


def _data_blocks(data: ReportData) -> str:
    sources = [COLLECTION] + [e.name for e in data.evaluations]
    meta = {"columns": list(ROW_COLUMNS), "rows": data.rows, "chunk": CHUNK, "page": PAGE_ROWS, "sources": sources}
    blocks = [f"<script type=\"application/json\" id=\"rows-data\">{_json(meta)}</script>"]
    for start in range(0, len(data.details), CHUNK):
        blocks.append(f"<script type=\"application/json\" id=\"chunk-{start // CHUNK}\">"
                      f"{_json(data.details[start:start + CHUNK])}</script>")
    return "\n".join(blocks)


# helpers -------------------------------------------------------------------------------------------------------
def _json(value: Any) -> str:
    """JSON safe inside a <script> element ("<" cannot open a tag or a comment)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).replace("<", "\\u003c")


def _section(key: str, title: str, body: str) -> str:
    return f"<section id=\"{key}\"><h2>{escape(title)}</h2>{body}</section>"


def _dl(rows: list[tuple[str, str]]) -> str:
    return "<dl class=\"facts\">" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _spec(spec: Any) -> str:
    if not spec:
        return ""
    return f"<code class=\"spec\">{escape(json.dumps(spec, separators=(', ', ': ')))}</code>"


def _date(text: Any) -> str:
    if not text:
        return "unknown"
    try:
        return datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(text)


def _asset(name: str) -> str:
    """The page's stylesheet or script, shipped beside this module (package data)."""
    return (ASSETS / name).read_text(encoding="utf-8").replace("</", "<\\/")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
