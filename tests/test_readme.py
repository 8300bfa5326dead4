"""The README's Python snippets run as written (the docs' snippets: tests/test_docs.py)."""

import re
from pathlib import Path

from agentkd import CodeActAgent, ReferencePolicy

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
# a block opens with a line "```python" and closes with a line "```" (fences inside strings don't count)
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, re.DOTALL | re.MULTILINE)


def block_with(text: str) -> str:
    return next(b for b in BLOCKS if text in b)


def test_readme_environment_definition_runs(tmp_path):
    namespace: dict = {}
    exec(compile(block_with("environment = Environment("), "README", "exec"), namespace)
    env = namespace["environment"]
    traj = CodeActAgent(env, ReferencePolicy()).run(env.tasks("train")[0])
    assert traj.success
