"""`agentkd report`: the page, its data, its plots and the command (fast; the browser test is test_report_browser.py)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.records import Step, Task, Trajectory, Usage
from agentkd.report import gather, write_report
from agentkd.report.plots import _pareto_front
from agentkd.report.svg import nice_ticks
from agentkd.run import RunLayout

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "</script><script>window.pwned = 1</script><!--"


def teacher_traj(task_id, kind, success=True, status="finished", cost=0.002, observation="found it"):
    steps = [Step(index=0, role="teacher", model="gpt", output="Thought: look.\n```python\nprint(search('x'))\n```",
                  thought="look.", action="print(search('x'))", observation=observation,
                  usage=Usage(prompt_tokens=100, completion_tokens=20, cost_usd=cost / 2, calls=1), latency_s=0.5),
             Step(index=1, role="teacher", model="gpt", output="Thought: done.\n```python\nfinal_answer('1855')\n```",
                  thought="done.", action="final_answer('1855')",
                  usage=Usage(prompt_tokens=120, completion_tokens=10, cost_usd=cost / 2, calls=1), latency_s=0.4)]
    return Trajectory(task=Task(id=task_id, prompt=f"When was {task_id} born?", answer="1855",
                                metadata={"kind": kind}),
                      policy="teacher:gpt", steps=steps, final_answer="1855" if success else "1900", status=status,
                      score=float(success), success=success, usage=sum((s.usage for s in steps), Usage()),
                      duration_s=1.0, error="rate limited" if status == "error" else None)


def cascade_traj(task_id, kind, deferred_second=True):
    vote_ok = {"mode": "code", "group_sizes": [3], "winner_count": 3, "needed": 3, "accepted": True,
               "winner_index": 0, "unusable": 0}
    vote_no = {"mode": "code", "group_sizes": [2, 1], "winner_count": 2, "needed": 3, "accepted": False,
               "winner_index": 0, "unusable": 0}
    cands = ["Thought: a\n```python\nprint(search('x'))\n```"] * 3
    first = Step(index=0, role="student", model="hf/student", output=cands[0], thought="a", action="print(search('x'))",
                 observation="found", candidates=cands, vote=vote_ok,
                 usage=Usage(prompt_tokens=300, completion_tokens=60, cost_usd=0.0001, calls=1))
    split = {"student": Usage(prompt_tokens=300, completion_tokens=60, cost_usd=0.0001, calls=1),
             "teacher": Usage(prompt_tokens=120, completion_tokens=10, cost_usd=0.001, calls=1)}
    second = Step(index=1, role="teacher" if deferred_second else "student", model="gpt",
                  output="Thought: done.\n```python\nfinal_answer('1855')\n```", thought="done.",
                  action="final_answer('1855')", candidates=["```python\nfinal_answer('1855')\n```",
                                                             "```python\nfinal_answer('1900')\n```", "no code"],
                  vote=vote_no if deferred_second else vote_ok, role_usage=split if deferred_second else {},
                  usage=split["student"] + split["teacher"])
    steps = [first, second]
    return Trajectory(task=Task(id=task_id, prompt=f"When was {task_id} born?", answer="1855", split="test",
                                metadata={"kind": kind}),
                      policy="cascade:hf/student+teacher:gpt", steps=steps, final_answer="1855", score=1.0, success=True,
                      usage=sum((s.usage for s in steps), Usage()), duration_s=2.0)


def eval_report(name, episodes, successes, cost, **extra):
    return {"policy": name, "split": "test", "episodes": episodes, "successes": successes,
            "success_rate": successes / episodes, "success_ci95": [max(0, successes / episodes - 0.2), 1.0],
            "errors": 0, "step_limit": 0, "mean_steps": 2.0, "cost_per_episode_usd": cost,
            "per_episode_by_role": {"teacher": {"prompt_tokens": 220, "completion_tokens": 30, "cost_usd": cost,
                                                "steps": 2, "mean_step_latency_s": 0.4}},
            "student_share_of_steps": extra.pop("student_share", 0.0), "deferral_rate": extra.pop("deferral_rate", None),
            "mean_episode_latency_s": 1.5, "details": {"policy": name}, **extra}


def write_jsonl(path, trajectories):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(t.model_dump_json() + "\n" for t in trajectories))


@pytest.fixture
def run(tmp_path):
    """A run folder with every file a full job writes (collection, student, teacher and cascade evaluations)."""
    root = tmp_path / "run"
    layout = RunLayout(root)
    root.mkdir()
    layout.config.write_text(json.dumps({
        "identity": {"command": "collect", "env": "agentkd_envs.factqa", "teacher": "openai/gpt-4o-mini",
                     "split": "train", "env_version": "1-seed0"},
        "details": {"n": 6, "versions": {"agentkd": "0.1.0", "python": "3.11"}},
        "created_at": "2026-11-25T02:54:03+00:00",
        "specs": {"env": {"target": "agentkd_envs.factqa", "kwargs": {}, "given": "factqa"},
                  "teacher": {"kind": "llm", "settings": {"model": "openai/gpt-4o-mini"}}}}))
    collected = [teacher_traj(f"train-{i}", ["single", "bridge"][i % 2], success=i != 3) for i in range(5)]
    collected.append(teacher_traj("train-9", "bridge", success=False, status="error", observation=HOSTILE))
    write_jsonl(layout.trajectories, collected)
    layout.student_dir.mkdir()
    layout.student_config.write_text("student: smollm2-135m\nepochs: 2.0\nlr: 0.001\nlora_r: 32\nscheduler: cosine\n")
    layout.student_data.write_text(json.dumps({"summary": "6 trajectories = kept 4 + set apart 2 failed + dropped 0",
                                               "seen": 6, "kept": 4, "examples": 4, "failed": 2, "dropped": {},
                                               "tokens": 3000, "trained_tokens": 1000}))
    log = [{"loss": 2.0 - 0.3 * k, "grad_norm": 1.0, "learning_rate": 1e-3 * (1 - k / 5), "epoch": k / 3, "step": 5 * (k + 1)}
           for k in range(5)]
    log += [{"train_runtime": 100.0, "train_loss": 1.4, "epoch": 2.0, "step": 25},
            {"train_tokens": 20000, "train_seconds": 100.0, "tokens_per_s": 200.0}]
    layout.train_log.write_text("".join(json.dumps(e) + "\n" for e in log))
    layout.preferences.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 2)
    layout.dpo_dir.mkdir()
    layout.dpo_train_log.write_text("".join(json.dumps({"loss": 0.69 - 0.1 * k, "rewards/margins": 0.2 * k, "step": k + 1})
                                            + "\n" for k in range(3)))
    write_jsonl(layout.eval_trajectories("teacher"), [teacher_traj(f"test-{i}", "single") for i in range(3)])
    layout.eval_report("teacher").write_text(json.dumps(eval_report("teacher", 3, 3, 0.002)))
    write_jsonl(layout.eval_trajectories("cascade-sft"),
                [cascade_traj("test-0", "single"), cascade_traj("test-1", "bridge", deferred_second=False)])
    be = {"upfront_usd": 0.012, "teacher_cost_per_episode_usd": 0.002, "policy_cost_per_episode_usd": 0.0007,
          "saving_per_episode_usd": 0.0013, "episodes": 9.2, "note": ""}
    layout.eval_report("cascade-sft").write_text(json.dumps(eval_report(
        "cascade-sft", 2, 2, 0.0007, student_share=0.75, deferral_rate=0.25, break_even=be)))
    return root


def page_data(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="rows-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(block)


def chunk(html: str, n: int) -> list:
    return json.loads(re.search(rf'<script type="application/json" id="chunk-{n}">(.*?)</script>', html, re.S).group(1))


def test_the_report_is_one_self_contained_page_with_every_section(run):
    path = write_report(run)
    assert path == RunLayout(run).report_html
    html = path.read_text()
    # nothing is fetched: no external script, stylesheet, image, font or frame
    assert not re.search(r'(src|href)\s*=\s*"(?!#)', html) and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # and the page forbids fetching anything anyway
    for section in ("overview", "collection", "training", "evaluations", "plots", "trajectories"):
        assert f'<section id="{section}">' in html
    for plot in ("pareto", "share", "breakeven", "kinds", "train-loss", "train-lr", "train-dpo-loss", "train-dpo-margin"):
        assert f'data-plot="{plot}"' in html, plot
    assert "openai/gpt-4o-mini" in html and "smollm2-135m fine-tuned" in html and "200.0 tokens/s" in html
    assert "kept 4 + set apart 2 failed" in html and "9.2 episodes" in html
    assert "2 in RUN/preferences.jsonl" in html and "preference (DPO) stage" in html
    assert html.count("<script") == 3  # the rows, one chunk of details, the viewer: the hostile text opened none
    assert "window.pwned" in html and HOSTILE not in html


def test_rows_and_details_hold_what_the_viewer_filters_on_and_shows(run):
    html = write_report(run).read_text()
    data = page_data(html)
    rows = [dict(zip(data["columns"], r)) for r in data["rows"]]
    assert len(rows) == 6 + 3 + 2 and data["sources"] == ["collection", "teacher", "cascade-sft"]
    assert [r["source"] for r in rows].count("cascade-sft") == 2
    failed = next(r for r in rows if r["task"] == "train-9")
    assert failed["success"] is False and failed["status"] == "error" and failed["kind"] == "bridge"
    deferred = [r for r in rows if r["deferred"]]
    assert len(deferred) == 1 and deferred[0]["teacher_steps"] == 1 and deferred[0]["student_steps"] == 1
    details = chunk(html, 0)
    assert len(details) == len(rows)
    opened = details[rows.index(deferred[0])]
    step = opened["steps"][1]
    assert step["deferred"] is True and step["vote"]["group_sizes"] == [2, 1] and len(step["candidates"]) == 3
    assert set(step["role_usage"]) == {"student", "teacher"}
    assert opened["final"] == "1855" and opened["task"]["answer"] == "1855" and opened["success"] is True
    assert "messages" not in opened  # the conversation repeats the steps; the page leaves it out
    assert details[rows.index(failed)]["error"] == "rate limited"


def test_plot_numbers(run):
    data = gather(run)
    cascade = next(e for e in data.evaluations if e.name == "cascade-sft")
    assert cascade.is_cascade and cascade.stats.roles_by_step == {0: {"student": 2}, 1: {"teacher": 1, "student": 1}}
    assert data.collection.by_kind == {"single": [3, 3], "bridge": [1, 3]}
    assert [p["step"] for p in data.train_points] == [5, 10, 15, 20, 25]
    assert data.train_summary["tokens_per_s"] == 200.0
    assert _pareto_front([(0.002, 1.0), (0.0007, 1.0), (0.001, 0.5)]) == [(0.0007, 1.0)]
    assert _pareto_front([(1, 0.5), (2, 0.9), (3, 0.7)]) == [(1, 0.5), (2, 0.9)]
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_a_run_with_only_a_collection_says_what_each_missing_plot_needs(tmp_path, run):
    for path in (RunLayout(run).eval_dir, RunLayout(run).student_dir):
        for f in sorted(path.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        path.rmdir()
    html = write_report(run).read_text()
    assert "no cascade evaluation in this run" in html and "no finished evaluation" in html
    assert "no training log" in html and 'data-plot="kinds"' in html
    assert len(page_data(html)["rows"]) == 6


def test_re_running_the_report_picks_up_a_new_evaluation(run):
    first = page_data(write_report(run).read_text())
    layout = RunLayout(run)
    write_jsonl(layout.eval_trajectories("student-sft"), [teacher_traj("test-0", "single", success=False)])
    layout.eval_report("student-sft").write_text(json.dumps(eval_report("student-sft", 1, 0, 0.0001)))
    second = page_data(write_report(run).read_text())
    assert len(second["rows"]) == len(first["rows"]) + 1 and "student-sft" in second["sources"]


def test_an_unfinished_evaluation_is_listed_without_a_report(run):
    layout = RunLayout(run)
    write_jsonl(layout.eval_trajectories("icd"), [teacher_traj("test-0", "single")])
    html = write_report(run).read_text()
    assert "not finished: 1 trajectories so far" in html and "icd" in page_data(html)["sources"]


def test_report_command_writes_where_asked_and_refuses_a_non_run(run, tmp_path):
    out = tmp_path / "elsewhere" / "page.html"
    done = CliRunner().invoke(app, ["report", "--run", str(run), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.is_file() and f"report: {out}" in done.output
    missing = CliRunner().invoke(app, ["report", "--run", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "not a run folder" in missing.output


def test_the_report_imports_nothing_heavy(run):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom agentkd.cli import app\n"
            f"assert CliRunner().invoke(app, ['report', '--run', {str(run)!r}]).exit_code == 0\n"
            "print(sorted(m for m in ('litellm', 'langgraph', 'faiss', 'torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_viewer_gets_tool_calls_and_confidence_votes():
    from agentkd.records import Step, Task, ToolCall, Trajectory, Vote
    from agentkd.report.data import detail

    vote = Vote(mode="confidence", accepted=False, winner_index=0, winner_count=1, needed=1, group_sizes=[1],
                unusable=0, confidence=0.91, threshold=0.99)
    step = Step(index=0, role="teacher", output="", observation="paid",
                tool_calls=[ToolCall(name="send_payment", arguments='{"to": "Ann", "amount": 5}')],
                candidates=["<tool_call>{...}</tool_call>"], vote=vote)
    shown = detail(Trajectory(task=Task(id="t", prompt="pay Ann"), policy="gateway", steps=[step]))["steps"][0]
    assert shown["tool_calls"] == [{"name": "send_payment", "arguments": '{"to": "Ann", "amount": 5}'}]
    assert "output" not in shown and shown["observation"] == "paid"
    assert shown["deferred"] and shown["vote"]["confidence"] == 0.91 and shown["vote"]["threshold"] == 0.99
