"""`agentkd check-env`: passes on the built-in environments, fails clearly on broken ones."""

import textwrap

import pytest
from typer.testing import CliRunner

from agentkd import Environment
from agentkd.agent.env_check import CheckReport, check_environment
from agentkd.cli import app

EXPECTED_CHECKS = ["loads", "splits", "task ids", "tools", "grader", "state", "reference solver (train)",
                   "reference solver (test)", "rejects a wrong answer"]

# A solver whose answers the grader rejects: it always answers 41.
WRONG_SOLVER_ENV = '''
from agentkd import Environment


def solve(task):
    yield 'Thought: I know this.\\n```python\\nfinal_answer(41)\\n```'


environment = Environment(
    name="always-41",
    tasks={"train": [{"id": "a", "prompt": "6 * 7?", "answer": 42}],
           "test": [{"id": "b", "prompt": "40 + 2?", "answer": 42}]},
    grader="numeric",
    reference_solver=solve,
)
'''

# A grader that accepts anything: the wrong-answer policy must expose it.
LAX_GRADER_ENV = '''
from agentkd import Environment


def solve(task):
    yield 'Thought: easy.\\n```python\\nfinal_answer(42)\\n```'


environment = Environment(
    name="lax",
    tasks=[{"id": "a", "prompt": "6 * 7?", "answer": 42}],
    grader=lambda answer: 1.0,
    reference_solver=solve,
)
'''


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("env", ["factqa", "mathcode", "apiworld"])
def test_check_env_passes_on_the_builtin_environments(env):
    result = CliRunner().invoke(app, ["check-env", env, "--n", "3"])
    assert result.exit_code == 0, result.output
    assert "all 9 checks passed" in result.output
    for name in EXPECTED_CHECKS:
        assert name in result.output


def test_report_lists_every_check_with_a_detail():
    report = check_environment("mathcode", n=2)
    assert isinstance(report, CheckReport) and report.ok and report.loaded
    assert [c.name for c in report.checks] == EXPECTED_CHECKS
    assert all(c.ok and c.detail for c in report.checks)
    assert report.checks[-2].detail == "solved 2/2"


def test_check_env_fails_when_the_grader_rejects_the_reference_solver(tmp_path):
    path = write(tmp_path, "always_41_env.py", WRONG_SOLVER_ENV)
    result = CliRunner().invoke(app, ["check-env", path])
    assert result.exit_code == 1
    assert "2 of 9 checks failed: reference solver (train), reference solver (test)" in result.output
    report = check_environment(path)
    failed = {c.name: c.detail for c in report.failed}
    assert failed["reference solver (train)"] == "solved 0/1; failed: a: the grader rejected the answer 41 (score 0)"


def test_check_env_fails_when_the_grader_accepts_a_wrong_answer(tmp_path):
    report = check_environment(write(tmp_path, "lax_env.py", LAX_GRADER_ENV))
    assert [c.name for c in report.failed] == ["rejects a wrong answer"]
    assert "accepted 'agentkd-wrong-answer'" in report.failed[0].detail


def test_check_env_reports_a_solver_that_never_answers(tmp_path):
    def solve(task):
        yield 'Thought: thinking.\n```python\nprint("still thinking")\n```'

    env = Environment(name="stuck", tasks=[{"id": "a", "prompt": "p", "answer": "x"}], grader="exact",
                      reference_solver=solve, max_steps=3)
    report = check_environment(env)
    assert [c.name for c in report.failed] == ["reference solver (train)"]
    assert "a: error (PolicyError: the reference solver of 'stuck' stopped after 1 step(s)" in report.failed[0].detail


def test_check_env_reports_a_grader_that_raises():
    def solve(task):
        yield 'Thought: easy.\n```python\nfinal_answer(42)\n```'

    env = Environment(name="fragile", tasks=[{"id": "a", "prompt": "6 * 7?", "answer": 42}],
                      grader=lambda answer: float(int(answer) == 42), reference_solver=solve)
    failed = {c.name: c.detail for c in check_environment(env).failed}
    assert list(failed) == ["rejects a wrong answer"]
    assert "raised ValueError: invalid literal for int()" in failed["rejects a wrong answer"]


def test_check_env_reports_broken_state_and_grader():
    shared: dict = {}
    env = Environment(name="shared", tasks=[{"id": "a", "prompt": "p", "answer": "x"}],
                      grader=lambda answer: 2.0, setup_state=lambda task: shared)
    failed = {c.name: c.detail for c in check_environment(env).failed}
    assert "a score in [0, 1]" in failed["grader"]
    assert "same object twice" in failed["state"]


def test_check_env_fails_clearly_when_the_environment_does_not_load(tmp_path):
    broken = write(tmp_path, "broken_env.py",
                   "from agentkd import Environment\nenvironment = Environment(name='x', tasks=[], grader='exact')\n")
    result = CliRunner().invoke(app, ["check-env", broken])
    assert result.exit_code == 1
    assert "cannot load environment" in result.output and "environment has no tasks" in result.output
    missing = CliRunner().invoke(app, ["check-env", str(tmp_path / "nowhere.py")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    report = check_environment(str(tmp_path / "nowhere.py"))
    assert not report.loaded and [c.name for c in report.checks] == ["loads"]
