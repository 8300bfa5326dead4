"""`agentkd improve` end to end at a tiny size (reference teacher on factqa, real SmolLM2 training, real llama.cpp
students): a round interrupted after a stage resumes at the next one, and a finished round is never touched."""

import json

import pytest
from typer.testing import CliRunner

from agentkd import RunFolder
from agentkd.cli import app
from agentkd.errors import AgentKDError

pytestmark = pytest.mark.slow

TINY = "epochs: 1\nbatch_size: 2\nmax_trajectories: 2\nlora_r: 4\nwarmup_steps: 0\nsave_steps: 1000\n"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def test_improve_resumes_mid_round_and_never_touches_a_finished_round(tmp_path, monkeypatch):
    import agentkd.cli.improve as improve

    run = tmp_path / "r"
    assert invoke("collect", "--env", "factqa", "--teacher", "reference", "--run", run, "--n", 6).exit_code == 0
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    args = ["improve", "--run", run, "--rounds", 1, "--budget", 2, "--probe-tasks", 3, "--eval-tasks", 2,
            "--samples", 2, "--max-steps", 3, "--config", config]
    real, ran, power = improve.execute, [], {"cut": True}

    def execute(stage):
        ran.append(stage.key)
        if stage.key == (1, "train") and power.pop("cut", False):
            raise AgentKDError("power cut")  # once, after prepare, probe and collect of round 1 are written
        real(stage)

    monkeypatch.setattr(improve, "execute", execute)
    done = invoke(*args)
    assert done.exit_code == 1 and "power cut" in done.output and "re-run the same command" in done.output
    assert ran == [(0, "train"), (0, "eval-student"), (0, "eval-cascade"), (1, "prepare"), (1, "probe"),
                   (1, "collect"), (1, "train")]
    round1 = run / "rounds" / "1"
    plan = json.loads((round1 / "plan.json").read_text())
    base_tasks = [t.task.id for t in RunFolder(run).iter_trajectories()]
    assert len(plan["probe"]) == 3 and not set(plan["probe"]) & set(base_tasks)  # unseen train tasks only
    assert all(tid.startswith("train-") for tid in plan["probe"]) and plan["student"].endswith("student/student.gguf")
    targets = json.loads((round1 / "targets" / "probe.json").read_text())
    assert len(targets["chosen"]) == 2 and targets["probed"] == 3
    in_round = [t.task.id for t in RunFolder(round1).iter_trajectories()]
    # the inherited episodes first, in order; the targeted ones after them, each once, in the order they finished
    # (the collection runs episodes concurrently, so completion order is not the order they were chosen in)
    chosen = [c["task_id"] for c in targets["chosen"]]
    assert in_round[:6] == base_tasks and len(in_round) == 8 and sorted(in_round[6:]) == sorted(chosen)
    assert not (round1 / "round.json").exists() and not (round1 / "student" / "merged").exists()

    # The unfinished round refuses other settings instead of mixing them.
    changed = invoke(*[("3" if a == 2 and args[i - 1] == "--budget" else a) for i, a in enumerate(args)])
    assert changed.exit_code == 1 and "other settings" in changed.output and "budget" in changed.output

    before, base_before = snapshot(round1), snapshot(run / "eval") | snapshot(run / "student")
    ran.clear()
    done = invoke(*args)
    assert done.exit_code == 0, done.output
    assert ran == [(1, "train"), (1, "eval-student"), (1, "eval-cascade"), (1, "summary")]  # resumed, nothing redone
    after = snapshot(round1)
    assert all(after[name] == stamp for name, stamp in before.items()), "a finished stage was rewritten"
    assert snapshot(run / "eval") | snapshot(run / "student") == base_before
    summary = json.loads((round1 / "round.json").read_text())
    assert (summary["round"], summary["teacher_episodes"], summary["new_teacher_episodes"]) == (1, 8, 2)
    assert summary["student_success"] is not None and summary["cascade_teacher_share"] is not None
    rows = json.loads((run / "rounds" / "summary.json").read_text())["rounds"]
    assert [r["round"] for r in rows] == [0, 1]
    assert "cascade teacher share" in done.output and 'data-plot="rounds"' in (run / "report.html").read_text()

    # Run twice: a finished round is never redone nor rewritten, whatever the settings now say.
    finished = snapshot(run / "rounds")
    ran.clear()
    assert invoke(*args).exit_code == 0 and ran == []
    assert invoke(*[("3" if a == 2 and args[i - 1] == "--budget" else a) for i, a in enumerate(args)]).exit_code == 0
    assert ran == [] and snapshot(run / "rounds") == finished
