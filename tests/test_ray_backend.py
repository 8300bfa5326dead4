"""The Ray backend of collect and eval: a real local Ray instance (one per module), real actors, real sandboxes."""

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from agentkd.cli import app  # noqa: E402
from agentkd.run import RunFolder  # noqa: E402
from agentkd.scale import Backend, BackendError  # noqa: E402
from agentkd.scale.ray_collect import collect_on_ray  # noqa: E402
from agentkd.specs import EnvSpec, PolicySpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PID_ENV = str(ROOT / "tests" / "envs" / "pid_echo.py")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A small Ray instance of its own for the module (never a cluster already running here); jobs find it
    initialised and leave it running."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pid_env():
    from agentkd import load_environment

    return load_environment(PID_ENV)


def host_pids(run: Path) -> dict[str, int]:
    """task id -> the process that hosted its tools (what the pid_echo env printed at step 0)."""
    records = [json.loads(x) for x in (run / "trajectories.jsonl").read_text().splitlines()]
    return {r["task"]["id"]: int(r["steps"][0]["observation"].strip()) for r in records}


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether process `pid` has exited (within the timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def keys(run: Path) -> list[tuple[str, int]]:
    return [(r["task"]["id"], r["sample_index"])
            for r in map(json.loads, (run / "trajectories.jsonl").read_text().splitlines())]


def ray_collect(env, run: Path, n: int, workers: int, concurrency: int, **kw):
    return asyncio.run(collect_on_ray(EnvSpec(target=PID_ENV), PolicySpec(kind="reference"), env.tasks("train", n),
                                      RunFolder(run), Backend(kind="ray", workers=workers),
                                      concurrency=concurrency, **kw))


def test_episodes_are_sharded_over_the_workers_and_written_once_by_the_driver(pid_env, tmp_path):
    run = tmp_path / "sharded"
    workers: list[int] = []
    stats = ray_collect(pid_env, run, 12, workers=2, concurrency=2, on_workers=workers.extend)
    assert stats.done == 12 and stats.succeeded == 12 and stats.workers_replaced == 0
    assert sorted(keys(run)) == sorted({(f"p{i}", 0) for i in range(12)})
    hosts = host_pids(run)
    assert len(workers) == 2 and os.getpid() not in workers
    assert set(hosts.values()) == set(workers)  # both workers ran episodes; none ran in the driver
    assert all(gone(pid) for pid in workers)  # and nothing is left running
    again = ray_collect(pid_env, run, 12, workers=2, concurrency=2)  # everything done: no worker even starts
    assert again.skipped == 12 and again.done == 0


def test_a_worker_killed_mid_run_loses_only_its_episodes_in_flight(pid_env, tmp_path):
    run = tmp_path / "killed"
    workers: list[int] = []
    killed: list[int] = []

    def kill_one(_traj, stats) -> None:
        if stats.done == 4 and not killed:
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])

    stats = ray_collect(pid_env, run, 24, workers=2, concurrency=2, on_workers=workers.extend, on_trajectory=kill_one)
    assert killed, "the kill must land mid-run"
    written = keys(run)
    assert len(written) == 24 and len(set(written)) == 24  # every task once: no loss, no duplicate
    assert stats.done == 24 and stats.succeeded == 24
    assert stats.workers_replaced == 1 and 1 <= stats.episodes_rerun <= 2  # at most its 2 episodes in flight
    assert all(gone(pid) for pid in workers)


def test_resume_crosses_backends_both_ways(tmp_path):
    run = tmp_path / "cross"
    base = ["collect", "--env", PID_ENV, "--teacher", "reference", "--run", str(run)]
    local = CliRunner().invoke(app, [*base, "--n", "4"])
    assert local.exit_code == 0, local.output
    on_ray = CliRunner().invoke(app, [*base, "--n", "10", "--backend", "ray", "--workers", "2", "--concurrency", "2"])
    assert on_ray.exit_code == 0, on_ray.output
    assert re.search(r"resumed \(skipped\)\s+│\s+4\s", on_ray.output), on_ray.output
    back = CliRunner().invoke(app, [*base, "--n", "12"])
    assert back.exit_code == 0, back.output
    written = keys(run)
    assert sorted(written) == sorted({(f"p{i}", 0) for i in range(12)})
    hosts = host_pids(run)
    assert {hosts[f"p{i}"] for i in range(4)} == {os.getpid()} == {hosts["p10"], hosts["p11"]}  # local runs
    assert os.getpid() not in {hosts[f"p{i}"] for i in range(4, 10)}  # the Ray run's episodes ran in workers
    config = json.loads((run / "run.json").read_text())
    assert config["details"]["backend"] == "local" and len(config["resumed_at"]) == 2

    evaluated = CliRunner().invoke(app, ["eval", "--run", str(run), "--policy", "teacher", "--split", "train",
                                         "--n", "6", "--backend", "ray", "--workers", "1", "--name", "t"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((run / "eval" / "t.json").read_text())
    assert report["episodes"] == 6 and report["success_rate"] == 1.0


def test_workers_that_cannot_build_the_job_fail_it_with_the_reason(tmp_path):
    missing = EnvSpec(target=str(tmp_path / "gone.py"))
    from agentkd import load_environment

    env = load_environment(PID_ENV)
    with pytest.raises(BackendError, match="could not build the environment and policy.*gone.py"):
        asyncio.run(collect_on_ray(missing, PolicySpec(kind="reference"), env.tasks("train", 2),
                                   RunFolder(tmp_path / "r"), Backend(kind="ray", workers=1)))
    assert not (tmp_path / "r" / "trajectories.jsonl").exists()


def test_more_workers_than_the_cluster_can_place_are_refused(tmp_path):
    too_many = CliRunner().invoke(app, ["collect", "--env", PID_ENV, "--teacher", "reference", "--n", "40",
                                        "--run", str(tmp_path / "r2"), "--backend", "ray", "--workers", "9",
                                        "--concurrency", "1"])
    assert too_many.exit_code == 1 and "9 Ray workers need 4.5 CPUs" in too_many.output


def test_workers_share_one_rate_limit_per_model(pid_env, tmp_path):
    from fake_openai_server import FakeOpenAIServer

    from agentkd.models.rate_limit import RateLimit
    from agentkd.policies.registry import teacher_spec

    run = tmp_path / "limited"
    with FakeOpenAIServer(pid_env) as server:  # labelled stand-in for a paid API, in this process
        teacher = teacher_spec("hosted_vllm/reference-stub", api_base=server.api_base)
        stats = asyncio.run(collect_on_ray(
            EnvSpec(target=PID_ENV), teacher, pid_env.tasks("train", 8), RunFolder(run), Backend(kind="ray", workers=2),
            concurrency=4, rate_limits={"hosted_vllm/reference-stub": RateLimit(rpm=600, burst_s=0.1)}))
        times = list(server.request_times)
    assert stats.done == 8 and stats.succeeded == 8
    assert len(set(host_pids(run).values())) == 2  # both workers called the model
    budget = stats.rate_limits["hosted_vllm/reference-stub"]
    assert budget.requests == len(times) == 16
    # 10 requests a second for the whole job: the reservations span 1.5 s, the arrivals a little less when the
    # first request is slow to reach the server; with a budget per worker they would span about 0.75 s
    assert times[-1] - times[0] >= (len(times) - 1) / 10 - 0.3, times


def test_an_episode_that_kills_every_worker_is_recorded_as_an_error_not_retried_forever(tmp_path):
    from agentkd import load_environment

    target = str(ROOT / "tests" / "envs" / "host_killer.py")
    env, run = load_environment(target), tmp_path / "poison"

    def job(max_restarts: int):
        return asyncio.run(collect_on_ray(EnvSpec(target=target), PolicySpec(kind="reference"), env.tasks("train"),
                                          RunFolder(run), Backend(kind="ray", workers=1, max_restarts=max_restarts),
                                          concurrency=1))

    with pytest.raises(BackendError, match="Ray workers died 1 time "):  # a job whose workers keep dying stops
        job(max_restarts=0)
    kept = keys(run)
    assert ("k0", 0) in kept and ("k1", 0) not in kept  # what was written is kept
    stats = job(max_restarts=3)  # resumes; k1 kills its worker 3 times, then is recorded
    records = {r["task"]["id"]: r for r in map(json.loads, (run / "trajectories.jsonl").read_text().splitlines())}
    assert sorted(records) == ["k0", "k1", "k2", "k3"] and len(keys(run)) == 4
    assert records["k1"]["status"] == "error" and "died 3 times" in records["k1"]["error"]
    assert all(records[k]["success"] for k in ("k0", "k2", "k3"))
    assert stats.workers_replaced == 2 and stats.episodes_rerun == 2  # none started once all is written
