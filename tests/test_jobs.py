"""Jobs run themselves: what they report to a progress, and how they stop (what is kept, Ctrl-C)."""

import pytest

from agentkd.collect.job import CollectJob
from agentkd.errors import AgentKDError, GraderError, JobFailed, JobInterrupted
from agentkd.jobs import SilentProgress, kept_note, stopping_cleanly
from agentkd.policies.registry import teacher_spec
from agentkd.specs import EnvSpec


class Recorded(SilentProgress):
    """A progress that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def start(self, title, total, text=""):
        self.calls.append(("start", title, total, text))

    def update(self, completed, total=None, text=None):
        self.calls.append(("update", completed, total, text))

    def status(self, message):
        self.calls.append(("status", message))

    def note(self, message):
        self.calls.append(("note", message))

    def done(self):
        self.calls.append(("done",))


def test_a_collection_reports_its_count_and_totals_and_resumes(tmp_path):
    job = CollectJob(run=tmp_path / "r", env=EnvSpec(target="factqa"), teacher=teacher_spec("reference"), n=2)
    progress = Recorded()
    stats = job.execute(progress)
    assert stats.done == 2 and stats.success_rate == 1.0
    assert progress.calls[0] == ("start", "collect", 2, "new 0: success 0%  $0.0000  errors 0")
    assert ("update", 2, None, "new 2: success 100%  $0.0000  errors 0") in progress.calls
    assert progress.calls[-2:] == [("update", 2, None, None), ("done",)]
    again = job.execute()  # nothing drawn; the finished episodes are skipped
    assert (again.done, again.skipped) == (0, 2)


def test_a_stage_that_fails_stops_the_drawing_then_says_what_is_kept(tmp_path):
    kept = tmp_path / "trajectories.jsonl"
    progress = Recorded()
    with pytest.raises(JobFailed) as failed, stopping_cleanly(progress, kept_note(kept, "trajectories"), "-"):
        raise GraderError("the grader broke")
    assert progress.calls == [("done",)] and isinstance(failed.value.__cause__, GraderError)
    assert str(failed.value).startswith("the grader broke\nNothing was written (no episode finished)")
    kept.write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(JobFailed, match=f"The 2 trajectories written so far are kept in {kept}"), \
            stopping_cleanly(progress, kept_note(kept, "trajectories"), "-"):
        raise GraderError("again")
    with pytest.raises(GraderError, match="^plain$"), stopping_cleanly(progress, "", "-"):
        raise GraderError("plain")  # nothing to add: the error passes as it is
    with pytest.raises(JobInterrupted, match="^interrupted; re-run to resume$"), \
            stopping_cleanly(progress, "", "re-run to resume"):
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), stopping_cleanly(progress, "", "-"):
        raise RuntimeError("a bug")
    assert progress.calls.count(("done",)) == 5
    assert issubclass(JobFailed, AgentKDError) and issubclass(JobInterrupted, AgentKDError)
