"""The packaged Qwen2.5-Coder-0.5B through the llama.cpp door: one real CodeAct step.

Skips (with the command to run) when the model is not installed; ./setup.sh installs it.
"""

import pytest

from agentkd import CodeActAgent, ModelClient
from agentkd.codeact.parsing import parse_action
from agentkd.models.distribution.catalog import QWEN_05B, status
from agentkd.policies.student import StudentPolicy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not status(QWEN_05B).installed,
                       reason="Qwen2.5-Coder-0.5B is not installed: run `agentkd models install qwen2.5-coder-0.5b` "
                              "(./setup.sh does)"),
]


def test_one_codeact_step_with_qwen_0_5b(factqa, monkeypatch):
    monkeypatch.setenv("AGENTKD_LLAMA_THREADS", "1")
    policy = StudentPolicy(ModelClient("gguf/qwen2.5-coder-0.5b", max_tokens=160))
    traj = CodeActAgent(factqa, policy, max_steps=1).run(factqa.tasks("train")[0])
    step = traj.steps[0]
    assert step.model == "gguf/qwen2.5-coder-0.5b"
    assert step.output.startswith("Thought:") and not step.output.startswith("Thought: Thought")
    assert parse_action(step.output).code  # a real model writes one python block, which the loop ran
    assert step.usage.prompt_tokens > 100 and step.usage.completion_tokens > 0
