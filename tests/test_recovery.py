"""Error-recovery augmentation: one slipped teacher step, the teacher's recovery, and a slip never trained on."""

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.collect.job import CollectJob, prepare_collect
from agentkd.collect.recovery import slip, slip_step
from agentkd.errors import AgentKDError
from agentkd.policies.registry import teacher_spec
from agentkd.records import Trajectory
from agentkd.scale.backend import Backend
from agentkd.specs import EnvSpec
from agentkd.store.records import records_from_trajectory
from agentkd.train.sft_data import student_conversation, tokenize_conversation


def test_a_slip_misspells_the_longest_word_of_the_first_string_and_never_an_answer():
    assert slip('print(act("go to countertop 1"))') == 'print(act("go to countrtop 1"))'
    assert slip("r = search('Thovru Stulaem')\nprint(r)") == "r = search('Thovru Stuaem')\nprint(r)"
    assert slip('final_answer("Paris")') is None
    assert slip("x = 12 * 5\nprint(x)") is None  # nothing to misspell
    assert slip('print(act("go"))') is None  # too short to misspell into a different command reliably


def test_the_slipped_step_is_chosen_reproducibly_per_task():
    picks = [slip_step(f"t{i}", 0.5) for i in range(200)]
    assert picks == [slip_step(f"t{i}", 0.5) for i in range(200)]
    chosen = [p for p in picks if p is not None]
    assert 70 < len(chosen) < 130 and set(chosen) <= {0, 1, 2}
    assert all(slip_step(f"t{i}", 1.0) is not None for i in range(50))


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    run = tmp_path_factory.mktemp("rec") / "run"
    result = CliRunner().invoke(app, ["collect", "--env", "household", "--teacher", "reference", "--n", "4",
                                      "--run", str(run), "--recovery", "1.0", "--concurrency", "2"])
    assert result.exit_code == 0, result.output
    return run, [Trajectory.model_validate_json(line) for line in (run / "trajectories.jsonl").read_text().splitlines()]


def test_every_chosen_episode_slips_once_and_the_teacher_recovers(recovered):
    _run, trajectories = recovered
    assert len(trajectories) == 4
    for traj in trajectories:
        slipped = [s for s in traj.steps if s.injected]
        assert len(slipped) == 1, traj.task.id
        step = slipped[0]
        assert step.index < 3 and step.role == "teacher"
        assert step.observation == "Nothing happens."  # the misspelt command did nothing
        assert step.action != step.injected.original
        assert traj.steps[step.index + 1].action == step.injected.original  # the recovery
        assert traj.success  # graded on the final state, as usual


def test_a_run_collected_with_slips_is_not_resumed_without_them(recovered):
    run, _ = recovered
    result = CliRunner().invoke(app, ["collect", "--env", "household", "--teacher", "reference", "--n", "5",
                                      "--run", str(run)])
    assert result.exit_code == 1 and "recovery: 1.0 -> None" in result.output
    assert len((run / "trajectories.jsonl").read_text().splitlines()) == 4


def test_the_slip_is_shown_to_the_student_but_never_trained_on_nor_indexed(recovered):
    from transformers import AutoTokenizer

    from agentkd import load_environment
    from agentkd.models.hf.local import resolve_local_model

    household = load_environment("household")
    _run, trajectories = recovered
    traj = trajectories[0]
    slipped = next(s for s in traj.steps if s.injected)
    messages = student_conversation(household, traj)
    assert [m.get("train") for m in messages if m["role"] == "assistant"].count(False) == 1
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_local_model("smollm2-135m")))
    example = tokenize_conversation(tokenizer, messages)
    trained = tokenizer.decode([t for t, m in zip(example.input_ids, example.assistant_masks) if m])
    shown = tokenizer.decode(example.input_ids)
    assert slipped.action in shown and slipped.action not in trained
    assert traj.steps[slipped.index + 1].output.split("```")[1] in trained  # the recovery is trained
    assert all(not r.id.endswith(f":{slipped.index}") for r in records_from_trajectory(traj))
    assert len(records_from_trajectory(traj)) == len(traj.steps) - 1


def test_recovery_is_refused_on_ray_with_the_reason(tmp_path):
    job = CollectJob(run=tmp_path / "r", env=EnvSpec(target="household", given="household"),
                     teacher=teacher_spec("reference"), n=1, recovery=0.5, backend=Backend(kind="ray"))
    with pytest.raises(AgentKDError, match="local backend only"):
        prepare_collect(job)
    assert not (tmp_path / "r" / "run.json").exists()  # refused before anything was written
