"""The in-context distillation experiment end to end, with real local LLMs on both sides.

    python tools/bench_icd.py --env factqa --run runs/icd-factqa                       # held-out test tasks
    python tools/bench_icd.py --env factqa --run runs/icd-factqa --split 'train[1000:1020]' --n 20   # a dev slice
    python tools/bench_icd.py --env factqa --run runs/icd-factqa --policies teacher,icd,cascade-result

Stages (each resumes when re-run, like the commands): collect `--train` teacher episodes on the train split
(`agentkd collect`), index their successful steps (`agentkd index`), optionally fine-tune the student on them
(`--sft`: `agentkd train`), then evaluate every policy of `--policies` on the same `--n` tasks of `--split`
(`agentkd eval`, RUN/eval/<policy>@<split>.json). Prints one table (success with its 95% interval, teacher share
of steps, tokens by role, model calls per step, $ per episode under the prices (cache-aware, and at list prices),
FLOPs = 2*params*tokens, the cost ratio against the teacher (and for a cascade, "at most": the ratio it would reach with no step deferred, since
its student samples are paid on every step), break-even episodes = collection $ / $ saved per episode, wall s per
episode) and writes it to RUN/eval/tables/icd@<split>.json. Choose settings on a dev slice of train, never on test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentkd.cli import collect, index, train  # noqa: E402
from agentkd.cli import eval as evaluation  # noqa: E402
from agentkd.collect.job import CollectJob  # noqa: E402
from agentkd.evaluate.costs import PAPER_PRICES, CostTable, Price, PriceSettings, cost_table  # noqa: E402
from agentkd.evaluate.job import EvalJob  # noqa: E402
from agentkd.evaluate.runner import eval_folder  # noqa: E402
from agentkd.policies.names import GRAMMAR, PolicyNameError, parse_policy_name  # noqa: E402
from agentkd.policies.registry import teacher_spec  # noqa: E402
from agentkd.policies.settings import ICD_STUDENT, ICDSettings  # noqa: E402
from agentkd.run import RunFolder, RunLayout  # noqa: E402
from agentkd.sampling import STUDENT_MAX_TOKENS  # noqa: E402
from agentkd.specs import EnvSpec, PolicySpec  # noqa: E402
from agentkd.store.build import IndexJob  # noqa: E402
from agentkd.train.config import TrainConfig  # noqa: E402
from agentkd.train.job import TrainJob  # noqa: E402

PARAMS = {"qwen2.5-coder-1.5b": 1.54e9, "qwen2.5-coder-0.5b": 0.49e9, "smollm2-135m": 0.135e9, "reference": 0.0}
"""Parameters by model alias (for FLOPs); a trained student has its base model's."""

POLICY_HELP = f"comma-separated policy names; {GRAMMAR}"


def policy_spec(name: str, teacher: PolicySpec, student: str, k: int, max_tokens: int) -> PolicySpec:
    """The spec of one policy name of --policies (`agentkd.policies.names`); exits naming what is allowed."""
    try:
        return parse_policy_name(name, teacher, student, k=k, max_tokens=max_tokens)
    except PolicyNameError as exc:
        raise SystemExit(str(exc)) from None


TABLE_ORDER = ("teacher", "student", "icd", "sft")


def eval_name(policy: str, split: str) -> str:
    """RUN/eval/<policy>@<split> (a slice `train[a:b]` becomes `train_a-b`)."""
    return f"{policy}@{split}".replace("[", "_").replace(":", "-").replace("]", "")


def alias(model: str) -> str:
    return model.split("/", 1)[-1]


def _tokens(role: dict[str, float]) -> str:
    """prompt/completion tokens per episode, with the cached part of the prompt when the server reported one."""
    cached = f" ({role['cached']:.0f} cached)" if role.get("cached") else ""
    return f"{role.get('prompt', 0):.0f}{cached}/{role.get('completion', 0):.0f}"


def print_table(table: CostTable, title: str) -> None:
    out = Table(title=title)
    for column in ("policy", "success (95% CI)", "teacher steps", "steps", "calls/step", "tokens T in/out",
                   "tokens S in/out", "$ / episode", "list $ / ep", "x cheaper (list)", "at most", "TFLOPs / ep",
                   "x fewer FLOPs",
                   "break-even ep",
                   "s / episode", "deferred by quarter"):
        out.add_column(column)
    for row in table.rows:
        lo, hi = row.success_ci95
        t, s = row.tokens.get("teacher", {}), row.tokens.get("student", {})
        out.add_row(
            row.name, f"{row.success_rate:.0%} ({lo:.0%}–{hi:.0%})", f"{row.teacher_share_of_steps:.0%}",
            f"{row.mean_steps:.2f}", f"{row.calls_per_step:.2f}",
            _tokens(t), _tokens(s),
            f"{row.cost_usd:.5f}", f"{row.list_cost_usd:.5f}",
            "" if row.cost_ratio is None else f"{row.cost_ratio:.2f} ({row.list_cost_ratio or 0:.2f})",
            "" if row.cost_ratio_bound is None else f"{row.cost_ratio_bound:.2f}",
            f"{row.flops / 1e12:.2f}", "" if row.flops_ratio is None else f"{row.flops_ratio:.2f}",
            "" if row.break_even_episodes is None else f"{row.break_even_episodes:.0f}", f"{row.wall_s:.1f}",
            " ".join("-" if q is None else f"{q:.0%}" for q in row.deferral_by_quarter))
    Console(width=220).print(out)


def run_stages(args: argparse.Namespace, teacher: PolicySpec) -> None:
    """Collect, index, (train), then evaluate each policy of --policies; every stage resumes when re-run."""
    run, layout = args.run, RunLayout(args.run)
    collect.execute(CollectJob(run=run, env=EnvSpec(target=args.env, given=args.env), teacher=teacher,
                               n=args.train, concurrency=args.concurrency, max_steps=args.max_steps))
    index.execute(IndexJob(run=run))
    if args.sft and not layout.has_trained_student():
        train.execute(TrainJob(run=run, config=TrainConfig(epochs=args.epochs), resume=layout.has_checkpoint()))
    for name in [p.strip() for p in args.policies.split(",") if p.strip()]:
        spec = policy_spec(name, teacher, args.student, args.k, args.max_tokens)
        evaluation.execute(EvalJob(run=run, policy=spec, name=eval_name(name, args.split), split=args.split,
                                   n=args.n, concurrency=args.concurrency, max_steps=args.max_steps))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="factqa")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--teacher", default="gguf/qwen2.5-coder-1.5b")
    parser.add_argument("--teacher-api-base", help="base URL of a served teacher (`agentkd serve`)")
    parser.add_argument("--student", default=ICD_STUDENT)
    parser.add_argument("--train", type=int, default=60, help="teacher episodes collected on the train split")
    parser.add_argument("--split", default="test", help="where the policies are compared (a dev slice: train[a:b])")
    parser.add_argument("--n", type=int, default=30, help="tasks of --split every policy runs")
    parser.add_argument("--policies", default="teacher,student,icd,cascade-code,cascade-result", help=POLICY_HELP)
    parser.add_argument("--k", type=int, default=ICDSettings.model_fields["k"].default,
                        help="demonstrations per step (a -kK part of a name overrides it)")
    parser.add_argument("--max-tokens", type=int, default=STUDENT_MAX_TOKENS, help="student tokens per step")
    parser.add_argument("--sft", action="store_true", help="fine-tune the student on the collected trajectories")
    parser.add_argument("--epochs", type=float, default=TrainConfig.model_fields["epochs"].default)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--max-steps", type=int, help="override the environment's step limit")
    parser.add_argument("--teacher-price", type=Price.model_validate, default=PAPER_PRICES["teacher"],
                        metavar="IN,OUT[,CACHED[,WRITE]]",
                        help="$ per 1M prompt,completion[,cached-read[,cache-write]] tokens (default: the paper's "
                             f"{PAPER_PRICES['teacher']})")
    parser.add_argument("--student-price", type=Price.model_validate, default=PAPER_PRICES["student"],
                        metavar="IN,OUT[,CACHED[,WRITE]]",
                        help=f"$ per 1M tokens, likewise (default: the paper's {PAPER_PRICES['student']})")
    parser.add_argument("--partial", action="store_true",
                        help="build the table now, on the tasks every evaluation has finished (others may still run)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; build the table from what is there")
    args = parser.parse_args(argv)

    run, layout = args.run, RunLayout(args.run)
    teacher = teacher_spec(args.teacher, **({"api_base": args.teacher_api_base} if args.teacher_api_base else {}))
    started = time.perf_counter()
    if not args.table_only:
        run_stages(args, teacher)
    # The table takes every finished evaluation of this split (several processes may each run some policies).
    suffix = eval_name("", args.split)
    finished = {p.stem.removesuffix(suffix): list(eval_folder(run, p.stem).iter_trajectories())
                for p in layout.eval_dir.glob(f"*{suffix}.jsonl")}
    order = [*TABLE_ORDER, *sorted(finished)]
    evaluations = {name: finished[name] for name in dict.fromkeys(order) if finished.get(name)}
    if args.partial and evaluations:  # compare on the tasks every evaluation has finished so far
        common = set.intersection(*({t.task.id for t in trajs} for trajs in evaluations.values()))
        evaluations = {name: [t for t in trajs if t.task.id in common] for name, trajs in evaluations.items()}
    else:
        evaluations = {name: trajs for name, trajs in evaluations.items() if len(trajs) == args.n}
    if "teacher" not in evaluations:
        print("the table needs the teacher's evaluation of this split too (--policies teacher)")
        return 0
    collected = [t for t in RunFolder(run).iter_trajectories()]
    student_params = PARAMS.get(alias(args.student), 0.0)
    settings = PriceSettings(prices={"teacher": args.teacher_price, "student": args.student_price},
                             params={"teacher": PARAMS.get(alias(args.teacher), 0.0), "student": student_params})
    table = cost_table(args.env, args.split, evaluations, collected, settings)
    path = layout.eval_table(eval_name("icd", args.split))
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {**table.model_dump(mode="json"), "teacher": args.teacher, "student": args.student,
                              "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                              "load_avg": os.getloadavg(), "wall_s": time.perf_counter() - started}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print_table(table, f"{args.env}: {table.tasks} tasks of {args.split}; teacher {args.teacher}, student "
                       f"{args.student}; collection {table.collection['episodes']} episodes "
                       f"({table.collection['successes']} solved), ${table.collection['cost_usd']:.4f}")
    print(f"table: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
