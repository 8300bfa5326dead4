"""`agentkd index` / `agentkd eval` end to end, and the deployable CascadedAgent."""

import json
from typing import Any, TypedDict

import pytest
from typer.testing import CliRunner

from agentkd import ModelClient, Task
from agentkd.agent.cascaded import CascadedAgent
from agentkd.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "r"
    runner = CliRunner()
    assert runner.invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "30",
                               "--run", str(folder)]).exit_code == 0
    indexed = runner.invoke(app, ["index", "--run", str(folder)])
    assert indexed.exit_code == 0, indexed.output
    assert json.loads((folder / "index" / "meta.json").read_text())["count"] > 30
    return folder


def test_eval_teacher_and_cascade_write_reports(run):
    runner = CliRunner()
    teacher = runner.invoke(app, ["eval", "--run", str(run), "--policy", "teacher", "--n", "3"])
    assert teacher.exit_code == 0, teacher.output
    report = json.loads((run / "eval" / "teacher.json").read_text())
    assert report["episodes"] == 3 and report["success_rate"] == 1.0 and report["student_share_of_steps"] == 0.0
    cascade = runner.invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--n", "2", "--max-steps", "2",
                                  "--max-tokens", "48", "--teacher-price", "1.0,2.0"])
    assert cascade.exit_code == 0, cascade.output
    report = json.loads((run / "eval" / "cascade.json").read_text())
    assert report["episodes"] == 2 and report["deferral_rate"] is not None
    assert set(report["per_episode_by_role"]) <= {"student", "teacher"}
    assert report["break_even"] is not None and "break-even" in cascade.output
    # $ cache-aware and at list prices, each role's price with its source, x cheaper than the teacher
    assert 0 < report["cost_per_episode_usd"] <= report["list_cost_per_episode_usd"]
    assert report["prices"]["teacher"] == {"prompt": 1.0, "completion": 2.0, "cached_prompt": None,
                                           "cache_write": None, "source": "stated"}  # --teacher-price 1.0,2.0
    assert report["prices"]["student"]["source"] == "paper" and report["versus_teacher"]["cheaper"] is not None
    assert "x cheaper than the teacher" in cascade.output and "cache-aware" in cascade.output
    teacher_report = json.loads((run / "eval" / "teacher.json").read_text())
    assert teacher_report["prices"]["teacher"]["source"] == "paper" and teacher_report["counted_by"]["teacher"]
    assert 0 < teacher_report["cost_per_episode_usd"] < teacher_report["list_cost_per_episode_usd"]
    lines = (run / "eval" / "cascade.jsonl").read_text().splitlines()
    assert len(lines) == 2
    again = runner.invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--n", "2", "--max-steps", "2",
                                "--max-tokens", "48", "--teacher-price", "1.0,2.0"])
    assert again.exit_code == 0 and len((run / "eval" / "cascade.jsonl").read_text().splitlines()) == 2  # resumed
    changed = runner.invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--n", "2", "--samples", "5"])
    assert changed.exit_code == 1 and "different job" in changed.output


def test_eval_bad_input(run, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["eval", "--run", str(run), "--policy", "oracle"])
    assert r.exit_code == 2 and "'oracle' is not one of 'teacher'" in r.output
    r = runner.invoke(app, ["eval", "--run", str(tmp_path / "nothing"), "--policy", "teacher"])
    assert r.exit_code == 1 and "not a run folder" in r.output
    r = runner.invoke(app, ["eval", "--run", str(run), "--policy", "cascade", "--teacher-price", "cheap"])
    assert r.exit_code == 1 and "--teacher-price" in r.output


def test_cascaded_agent_from_run_runs_and_plugs_into_a_langgraph_app(run):
    from langgraph.graph import END, START, StateGraph

    agent = CascadedAgent.from_run(run, student=ModelClient("smollm2-135m", max_tokens=48), max_steps=2, temperature=0.0)
    task = agent.env.tasks("test")[0]
    traj = agent.run(task)
    assert traj.status != "error" and traj.steps and traj.steps[0].vote is not None
    by_prompt = {t.prompt: t for t in agent.env.tasks("test", 20)}

    class AppState(TypedDict, total=False):
        question: str
        task: Task
        trajectory: Any
        answer: Any

    graph = StateGraph(AppState)
    graph.add_node("prepare", lambda s: {"task": by_prompt[s["question"]]})
    graph.add_node("agent", agent.as_graph())
    graph.add_node("report", lambda s: {"answer": s["trajectory"].final_answer})
    graph.add_edge(START, "prepare")
    graph.add_edge("prepare", "agent")
    graph.add_edge("agent", "report")
    graph.add_edge("report", END)
    import asyncio

    out = asyncio.run(graph.compile().ainvoke({"question": task.prompt}, {"recursion_limit": 30}))
    assert out["trajectory"].task == task and out["trajectory"].status != "error" and "answer" in out
