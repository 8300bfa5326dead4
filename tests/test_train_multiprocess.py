"""`agentkd train` under `accelerate launch`: the shipped configs parse, and (slow) two CPU processes over gloo
train SmolLM2-135M for two steps with the multi-GPU config, one process writing the student."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentkd import ReferencePolicy
from agentkd.collect import collect
from agentkd.run import RunFolder

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "accelerate"


def test_the_accelerate_configs_are_valid_for_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    multi = load_config_from_file(str(CONFIGS / "multi_gpu.yaml"))
    assert multi.distributed_type == DistributedType.MULTI_GPU and multi.mixed_precision == "no"
    zero = load_config_from_file(str(CONFIGS / "deepspeed_zero2.yaml"))
    assert zero.distributed_type == DistributedType.DEEPSPEED
    ds_file = ROOT / zero.deepspeed_config["deepspeed_config_file"]  # relative to the repository root
    ds = json.loads(ds_file.read_text())
    assert ds["zero_optimization"]["stage"] == 2
    # Values the Trainer must fill from agentkd's TrainConfig, so that the two never disagree.
    assert all(ds[key] == "auto" for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                                             "gradient_clipping"))


@pytest.mark.slow
def test_two_processes_train_one_student(factqa, tmp_path):
    run = tmp_path / "run"
    folder = RunFolder(run)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    asyncio.run(collect(factqa, ReferencePolicy(), factqa.tasks("train", 4), folder, concurrency=2))
    config = tmp_path / "tiny.yaml"
    config.write_text("batch_size: 1\nlora_r: 4\nwarmup_steps: 0\nlogging_steps: 1\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "multi_gpu.yaml"),
               "--num_processes", "2", "-m", "agentkd.cli", "train", "--run", str(run), "--config", str(config),
               "--max-steps", "2"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "rank 1/2: trained its shard" in output  # the second process ran to the end
    assert "on 2 processes" in output and output.count("SFT data:") == 1  # one process reports
    student = run / "student"
    adapters = [p for p in student.rglob("adapter_config.json") if "checkpoints" not in p.parts]
    assert adapters == [student / "adapter" / "adapter_config.json"]
    assert (student / "merged" / "config.json").is_file() and (student / "student.gguf").is_file()
    log = [json.loads(line) for line in (student / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["processes"] == 2 and max(e.get("step", 0) for e in log) == 2
    # Both processes built the same 4 conversations; two steps of one conversation on each: all 4 trained once.
    data = json.loads((student / "data.json").read_text())
    assert data["examples"] == 4 and "(4 conversations in the data)" in output
    assert log[-1]["train_tokens"] == data["tokens"]

    # The main process refuses to replace the student; the launcher stops the waiting process too, nothing is lost.
    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "already exists; pass --resume" in again.stdout + again.stderr
    assert (student / "adapter" / "adapter_config.json").is_file() and (student / "student.gguf").is_file()
