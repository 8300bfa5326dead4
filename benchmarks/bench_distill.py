"""Distillation quality on factqa: base student, in-context-distilled student, fine-tuned (SFT) student with
and without self-consistent action generation, and the cascade (fine-tuned student + reference teacher).

Runs the real commands (collect → index → train → eval) in RUN (default runs/bench-distill; every stage
resumes, so re-running only adds what is missing) and prints held-out success per question kind, with the
teacher's share of the cascade's steps. Usage:
    python benchmarks/bench_distill.py [--run runs/bench-distill] [--train 160] [--epochs 2] [--eval 40]
                                  [--baseline-eval 10] [--samples 5]
The base and in-context students run on --baseline-eval tasks only: they exhaust the step limit on most
episodes, which makes them the slowest to evaluate and adds little information.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from agentkd.run import RunLayout
from agentkd.sampling import SFT_STUDENT_MAX_TOKENS
from agentkd.train.config import TrainConfig


def agentkd(*args: str) -> None:
    print("$ agentkd " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "agentkd.cli", *args], check=True)


def per_kind(run: Path, name: str) -> dict[str, tuple[int, int]]:
    """kind → (successes, episodes) from RUN/eval/<name>.jsonl."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in RunLayout(run).eval_trajectories(name).read_text().splitlines():
        traj = json.loads(line)
        kind = traj["task"]["metadata"].get("kind", "?")
        counts[kind][0] += int(traj["success"])
        counts[kind][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(counts.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/bench-distill"))
    parser.add_argument("--train", type=int, default=160, help="reference trajectories collected and trained on")
    parser.add_argument("--epochs", type=float, default=TrainConfig.model_fields["epochs"].default)
    parser.add_argument("--eval", type=int, default=40, help="held-out test tasks for the fine-tuned policies")
    parser.add_argument("--baseline-eval", type=int, default=10, help="test tasks for the base and ICD students")
    parser.add_argument("--samples", type=int, default=5, help="samples per step for self-consistency / cascade")
    parser.add_argument("--max-tokens", type=int, default=SFT_STUDENT_MAX_TOKENS)
    args = parser.parse_args()
    run = args.run
    layout = RunLayout(run)

    agentkd("collect", "--env", "factqa", "--teacher", "reference", "--n", str(args.train), "--run", str(run))
    agentkd("index", "--run", str(run))
    if not layout.has_trained_student():
        resume = ["--resume"] if layout.has_checkpoint() else []
        agentkd("train", "--run", str(run), "--epochs", str(args.epochs), *resume)
    tok = ["--max-tokens", str(args.max_tokens)]
    sc = ["--samples", str(args.samples)]  # at eval's sampling temperature
    policies = [
        ("teacher", ["--policy", "teacher", "--n", str(args.eval)]),
        ("student", ["--policy", "student", "--n", str(args.baseline_eval), *tok]),
        ("icd", ["--policy", "icd", "--n", str(args.baseline_eval), *tok]),
        ("student-sft", ["--policy", "student", "--student", "trained", "--n", str(args.eval), *tok]),
        ("sc-sft", ["--policy", "sc", "--student", "trained", "--n", str(args.eval), *tok, *sc]),
        ("cascade-sft", ["--policy", "cascade", "--student", "trained", "--n", str(args.eval), *tok, *sc,
                         "--agreement", "result", "--min-agree", str(args.samples // 2 + 1)]),
    ]
    for name, extra in policies:
        agentkd("eval", "--run", str(run), "--name", name, *extra)

    kinds = sorted({k for name, _ in policies for k in per_kind(run, name)})
    header = f"{'policy':<14}{'episodes':>9}{'success':>9}" + "".join(f"{k:>12}" for k in kinds) + f"{'teacher share':>15}"
    print("\n" + header)
    for name, _ in policies:
        report = json.loads(layout.eval_report(name).read_text())
        counts = per_kind(run, name)
        cells = "".join(f"{'%d/%d' % counts[k] if k in counts else '-':>12}" for k in kinds)
        share = 1 - report["student_share_of_steps"]
        print(f"{name:<14}{report['episodes']:>9}{report['success_rate']:>9.0%}{cells}{share:>15.0%}")
    log = layout.train_log.read_text().splitlines()
    print(f"\ntraining: {json.loads(log[-1])}")


if __name__ == "__main__":
    main()
