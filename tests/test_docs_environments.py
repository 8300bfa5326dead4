"""docs/environments.md runs as written: its environment files load, solve and pass check-env."""

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd import CodeActAgent, ReferencePolicy, load_environment
from agentkd.agent.env_check import check_environment
from agentkd.cli import app

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "environments.md").read_text()
# a block opens with a line "```python" and closes with a line "```" (fences inside strings don't count)
BLOCKS = re.findall(r"^```python\n(.*?)^```$", GUIDE, re.DOTALL | re.MULTILINE)
FILE_MARK = re.compile(r"^# file: (\S+\.py)\n")
FILES = {m.group(1): b for b in BLOCKS if (m := FILE_MARK.match(b))}
SNIPPETS = [b for b in BLOCKS if not FILE_MARK.match(b)]


@pytest.fixture
def guide_dir(tmp_path, monkeypatch):
    """The guide's files written to a folder that is the working directory and on sys.path."""
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_guide_has_a_stateless_and_a_stateful_environment():
    assert set(FILES) == {"glossary_env.py", "ledger_env.py"}
    assert "BM25Retriever" in FILES["glossary_env.py"] and "setup_state" in FILES["ledger_env.py"]
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("name", ["glossary_env.py", "ledger_env.py"])
def test_guide_environments_are_solved_by_their_reference_solver(guide_dir, name):
    env = load_environment(str(guide_dir / name))
    agent = CodeActAgent(env, ReferencePolicy())
    for split in env.splits:
        for task in env.tasks(split):
            traj = agent.run(task)
            assert traj.success, (task.id, traj.status, traj.error, traj.final_answer)


@pytest.mark.parametrize("name", ["glossary_env.py", "ledger_env.py"])
def test_guide_environments_pass_check_env(guide_dir, name):
    report = check_environment(str(guide_dir / name), n=2)
    assert report.ok, report.failed


def test_guide_snippets_run_in_order(guide_dir, capsys):
    for snippet in SNIPPETS:
        exec(compile(snippet, "docs/environments.md", "exec"), {})
    out = capsys.readouterr().out
    assert "rejects a wrong answer" in out and "FAIL" not in out


def test_guide_check_env_command(guide_dir):
    command = re.search(r"^agentkd (check-env .+)$", GUIDE, re.MULTILINE).group(1).split()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "all 9 checks passed" in result.output
