"""Prices (cache-aware and list, from litellm's cost map or stated) and the ICD cost table: $, FLOPs, cost ratio and
break-even against the teacher row."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_students import DisagreeingOnSecondSteps

from agentkd.evaluate.costs import PAPER_PRICES, Price, PriceSettings, cost_table
from agentkd.evaluate.prices import litellm_price, resolve_prices, role_models
from agentkd.policies.registry import student_spec, teacher_spec
from agentkd.records import Step, Task, Trajectory, Usage, Vote
from agentkd.specs import PolicySpec

ROOT = Path(__file__).resolve().parents[1]


def traj(task: str, roles: list[str], success: bool, usage: dict[str, Usage], duration: float = 2.0) -> Trajectory:
    steps = [Step(index=i, role=role, output="x", usage=Usage()) for i, role in enumerate(roles)]
    steps[0] = steps[0].model_copy(update={"role_usage": usage, "usage": sum(usage.values(), Usage())})
    return Trajectory(task=Task(id=task, prompt="q", answer=1), policy="p", steps=steps, success=success,
                      duration_s=duration)


SETTINGS = PriceSettings(prices={"teacher": (3.0, 15.0), "student": (0.4, 1.6)},
                         params={"teacher": 1.5e9, "student": 0.5e9})


def test_cost_ratio_break_even_and_flops_against_the_teacher():
    teacher_use = {"teacher": Usage(prompt_tokens=1000, completion_tokens=100, calls=2)}
    cascade_use = {"student": Usage(prompt_tokens=1000, completion_tokens=300, calls=2),
                   "teacher": Usage(prompt_tokens=500, completion_tokens=50, calls=1)}
    evaluations = {
        "teacher": [traj("a", ["teacher", "teacher"], True, teacher_use), traj("b", ["teacher"] * 2, False, teacher_use)],
        "cascade": [traj("a", ["student", "teacher"], True, cascade_use), traj("b", ["student"] * 2, True, cascade_use)],
    }
    collected = [traj("c", ["teacher"], True, teacher_use)] * 10
    table = cost_table("e", "test", evaluations, collected, SETTINGS)
    teacher_row, cascade_row = table.rows
    assert teacher_row.cost_usd == pytest.approx((1000 * 3 + 100 * 15) / 1e6)
    assert cascade_row.cost_usd == pytest.approx((1000 * 0.4 + 300 * 1.6 + 500 * 3 + 50 * 15) / 1e6)
    assert cascade_row.cost_ratio == pytest.approx(teacher_row.cost_usd / cascade_row.cost_usd)
    assert cascade_row.flops == pytest.approx(2 * 0.5e9 * 1300 + 2 * 1.5e9 * 550)
    assert table.collection["cost_usd"] == pytest.approx(10 * teacher_row.cost_usd)
    saving = teacher_row.cost_usd - cascade_row.cost_usd
    assert cascade_row.break_even_episodes == pytest.approx(table.collection["cost_usd"] / saving)
    assert cascade_row.teacher_share_of_steps == pytest.approx(0.25)
    assert cascade_row.calls_per_step == pytest.approx(3 / 2)  # student call + the deferred step's teacher call
    assert (teacher_row.success_rate, cascade_row.success_rate) == (0.5, 1.0)
    assert teacher_row.cost_ratio is None
    student_usd = (1000 * 0.4 + 300 * 1.6) / 1e6
    assert cascade_row.cost_by_role == pytest.approx({"student": student_usd, "teacher": (500 * 3 + 50 * 15) / 1e6})
    # no deferral rate can take the cascade past what its student samples alone cost
    assert cascade_row.cost_ratio_bound == pytest.approx(teacher_row.cost_usd / student_usd)
    assert cascade_row.cost_ratio < cascade_row.cost_ratio_bound and teacher_row.cost_ratio_bound is None


def test_no_saving_means_no_break_even_and_tasks_must_match():
    use = {"teacher": Usage(prompt_tokens=100, completion_tokens=10, calls=1)}
    costly = {"teacher": Usage(prompt_tokens=200, completion_tokens=10, calls=1)}
    table = cost_table("e", "test", {"teacher": [traj("a", ["teacher"], True, use)],
                                     "other": [traj("a", ["teacher"], True, costly)]}, [], SETTINGS)
    assert table.rows[1].break_even_episodes is None and table.rows[1].cost_ratio == pytest.approx(450 / 750)
    with pytest.raises(ValueError, match="same tasks"):
        cost_table("e", "test", {"teacher": [traj("a", ["teacher"], True, use)],
                                 "other": [traj("b", ["teacher"], True, use)]}, [], SETTINGS)
    with pytest.raises(ValueError, match="needs the teacher"):
        cost_table("e", "test", {"other": [traj("a", ["teacher"], True, use)]}, [], SETTINGS)


def test_deferral_by_quarter_follows_run_order():
    from agentkd.evaluate.costs import deferral_by_quarter

    def voted(deferred: bool) -> Step:
        return Step(index=0, role="teacher" if deferred else "student", output="x", candidates=["a", "b"],
                    vote=Vote(mode="code", accepted=not deferred, winner_index=0, winner_count=1 if deferred else 2,
                              needed=2, group_sizes=[1, 1] if deferred else [2], unusable=0))

    trajs = [Trajectory(task=Task(id=str(i), prompt="q", answer=1), policy="p",
                        steps=[voted(i < 2), voted(i < 4)]) for i in range(8)]
    assert deferral_by_quarter(trajs) == [1.0, 0.5, 0.0, 0.0]
    assert deferral_by_quarter([Trajectory(task=Task(id="x", prompt="q", answer=1), policy="p",
                                           steps=[Step(index=0, role="teacher", output="x")])]) == []


def test_cache_aware_and_list_dollars_on_a_scripted_usage():
    use = {"student": Usage(prompt_tokens=1000, completion_tokens=100, calls=1, cached_prompt_tokens=800),
           "teacher": Usage(prompt_tokens=400, completion_tokens=40, calls=1, cached_prompt_tokens=300)}
    evaluations = {"teacher": [traj("a", ["teacher"], True, {"teacher": use["teacher"]})],
                   "cascade": [traj("a", ["student", "teacher"], True, use)]}
    table = cost_table("e", "test", evaluations, [], PriceSettings())  # the paper's prices with their cached reads
    teacher, cascade = table.rows
    at_list = (1000 * 0.4 + 100 * 1.6 + 400 * 3 + 40 * 15) / 1e6
    aware = (200 * 0.4 + 800 * 0.1 + 100 * 1.6 + 100 * 3 + 300 * 0.3 + 40 * 15) / 1e6
    assert cascade.list_cost_usd == pytest.approx(at_list) and cascade.cost_usd == pytest.approx(aware)
    assert teacher.cost_usd == pytest.approx((100 * 3 + 300 * 0.3 + 40 * 15) / 1e6)
    assert teacher.list_cost_usd == pytest.approx((400 * 3 + 40 * 15) / 1e6)
    assert cascade.cost_ratio == pytest.approx(teacher.cost_usd / aware)
    assert cascade.list_cost_ratio == pytest.approx(teacher.list_cost_usd / at_list)
    assert cascade.tokens["student"] == {"prompt": 1000, "completion": 100, "cached": 800}
    # a price without a cached-read price bills cached tokens at list; cache writes at their own price
    plain = PriceSettings(prices={"teacher": (3.0, 15.0)})
    assert plain.dollars("teacher", use["teacher"]) == plain.list_dollars("teacher", use["teacher"])
    anthropic = Price(prompt=3, completion=15, cached_prompt=0.3, cache_write=3.75)
    written = Usage(prompt_tokens=1000, cached_prompt_tokens=600, cache_write_tokens=300, completion_tokens=10)
    assert anthropic.dollars(written) == pytest.approx((100 * 3 + 600 * 0.3 + 300 * 3.75 + 10 * 15) / 1e6)
    assert plain.dollars("student", written) == 0.0  # a role without a price costs nothing
    assert (Usage(prompt_tokens=5, cached_prompt_tokens=3) + Usage(prompt_tokens=5, cached_prompt_tokens=2)
            ).cached_prompt_tokens == 5
    assert Price.model_validate("3,15,0.3") == Price(prompt=3, completion=15, cached_prompt=0.3)
    assert str(PAPER_PRICES["teacher"]) == "3,15,0.3" and str(PAPER_PRICES["student"]) == "0.4,1.6,0.1"
    for bad in ("cheap", "1", "1,2,3,4,5", "-1,2"):
        with pytest.raises(ValueError):
            Price.model_validate(bad)


def test_prices_of_api_models_come_from_litellms_local_cost_map_never_the_network():
    """A fresh process without LITELLM_LOCAL_MODEL_COST_MAP: agentkd sets it before litellm loads, no socket opens,
    and the list and cache-read prices are litellm.model_cost's."""
    code = """
import json, os, socket
def refuse(*args, **kwargs):
    raise AssertionError("a network connection was attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from agentkd.evaluate.prices import litellm_price, resolve_prices
import litellm
out = {"env": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP")}
for model, key in (("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"), ("openai/gpt-4.1-mini", "gpt-4.1-mini")):
    entry = litellm.model_cost[key]
    out[model] = [litellm_price(model).model_dump(), {k: entry.get(k) for k in (
        "input_cost_per_token", "output_cost_per_token", "cache_read_input_token_cost",
        "cache_creation_input_token_cost")}]
litellm.model_cost["gpt-4.1-mini"] = {**litellm.model_cost["gpt-4.1-mini"], "cache_read_input_token_cost": 1.5e-07}
out["patched"] = litellm_price("openai/gpt-4.1-mini").cached_prompt
out["resolved"] = resolve_prices({"teacher": "anthropic/claude-sonnet-4-5", "student": "gguf/qwen2.5-coder-0.5b"}
                                 ).model_dump(mode="json")
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["env"] == "True"
    for model, key in (("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"), ("openai/gpt-4.1-mini", "gpt-4.1-mini")):
        price, entry = out[model]
        assert price["prompt"] == pytest.approx(entry["input_cost_per_token"] * 1e6)
        assert price["completion"] == pytest.approx(entry["output_cost_per_token"] * 1e6)
        assert price["cached_prompt"] == pytest.approx(entry["cache_read_input_token_cost"] * 1e6)
        assert price["cached_prompt"] < price["prompt"] and price["source"] == f"litellm:{key}"
        if entry["cache_creation_input_token_cost"] is not None:
            assert price["cache_write"] == pytest.approx(entry["cache_creation_input_token_cost"] * 1e6)
    assert out["patched"] == pytest.approx(0.15)  # read from the map as it is, not from a table of our own
    teacher, student = out["resolved"]["prices"]["teacher"], out["resolved"]["prices"]["student"]
    assert teacher["source"] == "litellm:claude-sonnet-4-5" and teacher["cache_write"] == pytest.approx(3.75)
    assert student == PAPER_PRICES["student"].model_dump()  # a local model: the stated default


def test_the_paper_pair_is_what_litellm_prices_the_papers_models_at():
    for role, model in (("teacher", "anthropic/claude-sonnet-4-5"), ("student", "openai/gpt-4.1-mini")):
        price = litellm_price(model)
        paper = PAPER_PRICES[role]
        assert (price.prompt, price.completion, price.cached_prompt) == pytest.approx(
            (paper.prompt, paper.completion, paper.cached_prompt))


def test_each_role_is_priced_stated_then_by_litellm_then_at_the_default():
    cascade = PolicySpec(kind="cascade", settings={"student": student_spec("gguf/qwen2.5-coder-0.5b", demos=True),
                                                   "teacher": teacher_spec("openai/gpt-4.1-mini")})
    assert role_models(cascade) == {"student": "gguf/qwen2.5-coder-0.5b", "teacher": "openai/gpt-4.1-mini"}
    assert role_models(teacher_spec("reference")) == {"teacher": "reference"}
    priced = resolve_prices(role_models(cascade))
    assert priced.prices["teacher"].source == "litellm:gpt-4.1-mini" and priced.prices["student"] == PAPER_PRICES["student"]
    stated = Price.model_validate("1,2")
    assert resolve_prices(role_models(cascade), {"teacher": stated}).prices["teacher"] == stated
    for model in ("reference", "hosted_vllm/qwen2.5-coder-1.5b", "trained", "smollm2-135m", "openai/no-such-model"):
        assert resolve_prices({"teacher": model}).prices["teacher"] == PAPER_PRICES["teacher"], model


def test_the_reference_teacher_counts_what_a_model_teacher_would_spend(factqa):
    """Each reference step records one call: its rendered prompt, the prefix shared with the teacher's previous call
    (cached) and its step text, counted with a named tokenizer; nothing billed."""
    from agentkd import CodeActAgent
    from agentkd.models.prefix import common_prefix
    from agentkd.models.token_count import token_counter
    from agentkd.policies.reference import ReferencePolicy

    traj = CodeActAgent(factqa, ReferencePolicy()).run(factqa.tasks("test", 1)[0])
    assert traj.success and len(traj.steps) >= 2
    counter = token_counter()
    previous: list = []
    first = len(traj.messages) - 2 * len(traj.steps) + 1  # the system prompt and the task; then reply, observation
    for i, step in enumerate(traj.steps):
        prompt = list(counter.prompt_tokens(traj.messages[:first + 2 * i]))  # what the teacher read at step i
        u = step.usage
        assert u.prompt_tokens == len(prompt) > 0 and u.completion_tokens == counter.count(step.output) > 0
        assert u.cached_prompt_tokens == (common_prefix(previous, prompt) if previous else 0)
        assert u.calls == 1 and u.cost_usd == 0.0 and u.counted_by == counter.label
        previous = prompt
    # the whole previous prompt is a prefix of the next one (the chat template only appends)
    assert traj.steps[1].usage.cached_prompt_tokens == len(list(counter.prompt_tokens(traj.messages[:first]))) > 0
    priced = PriceSettings()
    assert priced.dollars("teacher", traj.steps[1].usage) < priced.list_dollars("teacher", traj.steps[1].usage)


def test_a_deferred_steps_cache_is_the_teachers_previous_call_not_the_students():
    from agentkd.policies.reference import counted_usage, previous_teacher_call

    def step(i: int, role: str, teacher_called: bool) -> Step:
        split = {"student": Usage(calls=1), **({"teacher": Usage(calls=1)} if teacher_called else {})}
        return Step(index=i, role=role, output=f"s{i}", role_usage=split if role == "teacher" or teacher_called else {})

    steps = [step(0, "student", False), step(1, "teacher", True), step(2, "student", False)]
    assert previous_teacher_call(steps) == 1 and previous_teacher_call(steps[:1]) is None
    assert previous_teacher_call([Step(index=0, role="teacher", output="x")]) == 0
    messages = [{"role": "system", "content": "You solve tasks. " * 40}, {"role": "user", "content": "task"}]
    for s in steps:
        messages += [{"role": "assistant", "content": s.output}, {"role": "user", "content": f"obs {s.index}"}]
    from agentkd.models.prefix import common_prefix
    from agentkd.models.token_count import token_counter

    counter = token_counter()
    now = counted_usage(messages, steps, "Thought: next.")
    at_step_1 = list(counter.prompt_tokens(messages[:4]))  # what the teacher read when it was called at step 1
    assert now.cached_prompt_tokens == common_prefix(at_step_1, list(counter.prompt_tokens(messages)))
    assert now.cached_prompt_tokens == len(at_step_1) < len(list(counter.prompt_tokens(messages[:6])))
    assert counted_usage(messages, steps[:0], "x").cached_prompt_tokens == 0


def _usage_150_cached(n: int) -> Usage:
    """Each scripted student call: 200 prompt tokens, 150 of them read from the cache."""
    return Usage(prompt_tokens=200, completion_tokens=30 * n, calls=1, cached_prompt_tokens=150)


@pytest.mark.slow
def test_an_evaluation_reports_cache_aware_and_list_dollars_x_cheaper_and_break_even(tmp_path):
    import asyncio

    from agentkd.collect.job import CollectJob, prepare_collect
    from agentkd.env.loading import load_environment
    from agentkd.evaluate import evaluate
    from agentkd.evaluate.job import EvalJob, prepare_eval
    from agentkd.policies.cascade import CascadePolicy
    from agentkd.policies.reference import ReferencePolicy
    from agentkd.specs import EnvSpec

    run = tmp_path / "run"
    teacher = teacher_spec("reference")
    asyncio.run(prepare_collect(CollectJob(run=run, env=EnvSpec(target="factqa", given="factqa"), teacher=teacher,
                                           n=3)).run())
    asyncio.run(prepare_eval(EvalJob(run=run, policy=teacher, name="teacher", split="test", n=2)).run())
    env = load_environment("factqa")
    cascade = CascadePolicy(DisagreeingOnSecondSteps(env, _usage_150_cached), ReferencePolicy(), samples=2, agreement="code")
    asyncio.run(evaluate(env, cascade, env.tasks("test", 2), run, "cascade", "test", {"policy": "scripted"},
                         prices={"student": (0.1, 0.4, 0.05)}))
    teacher_report = json.loads((run / "eval" / "teacher.json").read_text())
    report = json.loads((run / "eval" / "cascade.json").read_text())
    # the teacher: reference tokens counted and priced at the paper's teacher pair, labelled as counted
    assert teacher_report["prices"]["teacher"] == PAPER_PRICES["teacher"].model_dump()
    assert "tokenizer" in teacher_report["counted_by"]["teacher"] or "estimated" in teacher_report["counted_by"]["teacher"]
    assert 0 < teacher_report["cost_per_episode_usd"] < teacher_report["list_cost_per_episode_usd"]
    assert teacher_report["versus_teacher"] is None and teacher_report["break_even"] is None
    role = teacher_report["per_episode_by_role"]["teacher"]
    assert 0 < role["cached_prompt_tokens"] < role["prompt_tokens"] and role["cost_usd"] < role["list_cost_usd"]
    # the cascade: both $, each role's price, x cheaper against eval/teacher on the same tasks, break-even
    assert report["prices"]["student"] == {"prompt": 0.1, "completion": 0.4, "cached_prompt": 0.05,
                                           "cache_write": None, "source": "stated"}
    assert 0 < report["cost_per_episode_usd"] < report["list_cost_per_episode_usd"]
    versus = report["versus_teacher"]
    assert versus["teacher_cost_per_episode_usd"] == pytest.approx(teacher_report["cost_per_episode_usd"])
    assert versus["cheaper"] == pytest.approx(teacher_report["cost_per_episode_usd"] / report["cost_per_episode_usd"])
    assert versus["cheaper_at_list"] == pytest.approx(
        teacher_report["list_cost_per_episode_usd"] / report["list_cost_per_episode_usd"])
    assert versus["basis"] == "eval/teacher on the same 2 tasks"
    be = report["break_even"]
    assert be["upfront_usd"] > 0 and be["episodes"] == pytest.approx(be["upfront_usd"] / (
        versus["teacher_cost_per_episode_usd"] - report["cost_per_episode_usd"]))


def test_the_main_jobs_table_shows_cache_aware_and_list_dollars_x_cheaper_and_the_prices(tmp_path, capsys):
    from agentkd.cli.pipeline import print_results
    from agentkd.pipeline import PipelineSettings, stages
    from agentkd.run import RunLayout

    run = tmp_path / "demo"
    planned = stages(run, PipelineSettings(eval_tasks=2))
    layout = RunLayout(run)
    layout.eval_dir.mkdir(parents=True)
    teacher_price = PAPER_PRICES["teacher"].model_dump()
    base = {"episodes": 2, "success_rate": 1.0, "success_ci95": [0.34, 1.0], "mean_steps": 2.0,
            "mean_episode_latency_s": 0.4, "deferral_rate": None}
    reports = {
        "teacher": {**base, "student_share_of_steps": 0.0, "cost_per_episode_usd": 0.0123,
                    "list_cost_per_episode_usd": 0.0234, "prices": {"teacher": teacher_price},
                    "counted_by": {"teacher": "the qwen2.5-coder-0.5b tokenizer"}},
        "student-sft": {**base, "student_share_of_steps": 1.0, "cost_per_episode_usd": 0.00041,
                        "list_cost_per_episode_usd": 0.00082, "versus_teacher": {"cheaper": 30.0, "cheaper_at_list": 28.5},
                        "break_even": {"episodes": 31.2}, "prices": {"student": PAPER_PRICES["student"].model_dump()}},
        "cascade-sft": {**base, "student_share_of_steps": 0.75, "cost_per_episode_usd": 0.00410,
                        "list_cost_per_episode_usd": 0.0078, "versus_teacher": {"cheaper": 3.0, "cheaper_at_list": 3.0},
                        "break_even": {"episodes": None, "note": "no saving"}, "deferral_rate": 0.25},
    }
    for name, report in reports.items():
        layout.eval_report(name).write_text(json.dumps(report))
    print_results(run, planned, "factqa", 2, 12.0)
    out, err = capsys.readouterr()
    for column in ("$ / episode", "list $ / episode", "x cheaper (list)", "break-even", "teacher share of steps"):
        assert column in out, column
    teacher = next(line for line in out.splitlines() if "│ teacher " in line)
    assert "$0.0123" in teacher and "$0.0234" in teacher
    cascade = next(line for line in out.splitlines() if "cascade-sft" in line)
    assert "$0.00410" in cascade and "3.00x (3.00x)" in cascade and "25%" in cascade
    student = next(line for line in out.splitlines() if "student-sft" in line)
    assert "30.0x (28.5x)" in student and "31 episodes" in student
    said = " ".join(err.split())
    assert "cache-aware" in said and f"teacher: {PAPER_PRICES['teacher'].describe()}" in said
    assert "tokens counted with the qwen2.5-coder-0.5b tokenizer" in said and "student: $0.40 / $1.60" in said
