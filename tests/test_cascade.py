"""The cascade with the real local student (SmolLM2-135M) and the reference teacher."""

import asyncio

import pytest

from agentkd import CodeActAgent, ModelClient, ReferencePolicy
from agentkd.collect import collect
from agentkd.evaluate import summarize
from agentkd.policies.cascade import CascadePolicy
from agentkd.policies.student import StudentPolicy
from agentkd.run import RunFolder
from agentkd.store import DemoStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(factqa, tmp_path_factory):
    folder = RunFolder(tmp_path_factory.mktemp("teacher"))
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 30), folder, concurrency=8))
    return DemoStore.build(folder.iter_trajectories())


def run_cascade(factqa, store, temperature, steps=2, online=False):
    student = StudentPolicy(ModelClient("smollm2-135m", max_tokens=64), store=store, k=2)
    policy = CascadePolicy(student, ReferencePolicy(), samples=3, temperature=temperature, agreement="code",
                           online=online)
    return CodeActAgent(factqa, policy, max_steps=steps).run(factqa.tasks("test")[0])


def check_accounting(traj):
    by_role = traj.usage_by_role()
    assert sum(u.total_tokens for u in by_role.values()) == traj.usage.total_tokens
    assert by_role["student"].calls == len(traj.steps)  # one 3-sample call per step
    for step in traj.steps:
        assert len(step.candidates) == 3 and step.vote.mode == "code"
        assert step.role == ("teacher" if step.deferred else "student")
        if step.deferred:
            assert step.role_usage["student"].completion_tokens > 0
        else:
            assert step.output in step.candidates


def test_greedy_samples_agree_and_the_student_acts(factqa, store):
    traj = run_cascade(factqa, store, temperature=0.0, steps=1)
    step = traj.steps[0]
    assert step.vote.accepted and step.role == "student" and step.vote.winner_count == 3
    assert step.output.startswith("Thought:") and step.action  # the ICD student keeps the CodeAct format
    check_accounting(traj)


def test_hot_samples_disagree_and_the_step_goes_to_the_teacher(factqa, store):
    before = len(store)
    traj = run_cascade(factqa, store, temperature=2.0, steps=2, online=True)
    assert any(s.deferred for s in traj.steps)
    deferred = next(s for s in traj.steps if s.deferred)
    assert deferred.model == "reference" and "search(" in deferred.output
    check_accounting(traj)
    report = summarize([traj], "cascade", "test")
    assert report.deferral_rate == sum(s.deferred for s in traj.steps) / len(traj.steps)
    assert 0.0 <= report.student_share_of_steps < 1.0
    # online mode: every step the teacher took is now a demonstration in the store
    assert len(store) == before + sum(s.deferred for s in traj.steps)
    assert store.records[-1].goal == traj.task.prompt
