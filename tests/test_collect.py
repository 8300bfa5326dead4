import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.errors import RunFolderError
from agentkd.run import RunFolder

ROOT = Path(__file__).resolve().parents[1]
SLOW_ENV = str(ROOT / "tests" / "envs" / "slow_echo.py")


def wait_for_lines(run: Path, n: int, timeout_s: float = 60) -> Path:
    """Wait until a running collection has written `n` trajectories (or the timeout passes); the file's path."""
    out = run / "trajectories.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < n):
        time.sleep(0.05)
    return out


def lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "trajectories.jsonl").read_text().splitlines()]


def test_collect_reference_end_to_end(tmp_path):
    run = tmp_path / "ref"
    result = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "train",
                                      "--n", "24", "--concurrency", "6", "--run", str(run)])
    assert result.exit_code == 0, result.output
    records = lines(run)
    assert len(records) == 24
    assert len({r["task"]["id"] for r in records}) == 24
    assert all(r["success"] and r["status"] == "finished" for r in records)
    config = json.loads((run / "run.json").read_text())
    assert config["identity"]["teacher"] == "reference"
    assert config["details"]["versions"]["agentkd"]
    # re-running the same command adds nothing
    again = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "train",
                                     "--n", "24", "--concurrency", "6", "--run", str(run)])
    assert again.exit_code == 0 and len(lines(run)) == 24
    # samples-per-task extends the same run with sample index 1
    more = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "train",
                                    "--n", "3", "--samples-per-task", "2", "--run", str(run)])
    assert more.exit_code == 0
    keys = [(r["task"]["id"], r["sample_index"]) for r in lines(run)]
    assert len(keys) == 27 and len(set(keys)) == 27
    assert {("train-00000", 1), ("train-00001", 1), ("train-00002", 1)} <= set(keys)


def test_resume_after_kill_9_gives_exactly_n_distinct_trajectories(tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--env", SLOW_ENV, "--teacher", "reference",
           "--n", "40", "--concurrency", "4", "--run", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    out = wait_for_lines(run, 6)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(out.read_text().splitlines())
    assert 6 <= written < 40, "the kill must land mid-run"
    with open(out, "a") as handle:  # a torn line, as if the kill had landed mid-write
        handle.write('{"schema_version": 1, "task": {"id": "t3')
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = lines(run)
    keys = [(r["task"]["id"], r["sample_index"]) for r in records]
    assert len(keys) == 40 and len(set(keys)) == 40
    assert all(r["success"] for r in records)
    assert (run / "trajectories.torn").read_text().startswith('{"schema_version"')


def test_run_folder_refuses_a_different_job(tmp_path):
    run = tmp_path / "r"
    ok = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "2", "--run", str(run)])
    assert ok.exit_code == 0
    before = (run / "trajectories.jsonl").read_text()
    bad = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "test",
                                   "--n", "2", "--run", str(run)])
    assert bad.exit_code == 1
    assert "different job" in bad.output and "split" in bad.output
    assert (run / "trajectories.jsonl").read_text() == before


def test_slices_of_a_split_add_their_tasks_to_the_same_run(tmp_path):
    run = tmp_path / "r"

    def collect(split: str):
        return CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", split,
                                        "--run", str(run), "--concurrency", "1"])

    assert collect("train[0:2]").exit_code == 0
    config = run / "run.json"
    record = json.loads(config.read_text())
    record["identity"]["split"] = "train[0:2]"  # as agentkd recorded a slice before
    config.write_text(json.dumps(record))
    assert collect("train[0:2]").exit_code == 0  # resumes: nothing to run
    assert collect("train[5:7]").exit_code == 0  # a later slice, past a dev slice train[2:5]
    assert [t["task"]["id"] for t in lines(run)] == ["train-00000", "train-00001", "train-00005", "train-00006"]
    assert json.loads(config.read_text())["identity"]["split"] == "train"
    other = collect("test[0:2]")
    assert other.exit_code == 1 and "different job" in other.output and "'train' -> 'test'" in other.output


def test_bad_cli_input_is_a_clear_nonzero_exit(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["collect", "--env", "nope_env", "--teacher", "reference", "--run", str(tmp_path / "x")])
    assert r.exit_code == 1 and "cannot find environment" in r.output
    r = runner.invoke(app, ["collect", "--env", "factqa", "--teacher", "nonsense-model", "--run", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown model" in r.output
    r = runner.invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--split", "dev",
                            "--run", str(tmp_path / "x")])
    assert r.exit_code == 1 and "unknown split 'dev'" in r.output
    r = runner.invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--concurrency", "0",
                            "--run", str(tmp_path / "x")])
    assert r.exit_code == 2


def test_corrupt_middle_line_is_reported_not_silently_dropped(tmp_path):
    run = tmp_path / "c"
    assert CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "2",
                                    "--run", str(run)]).exit_code == 0
    path = run / "trajectories.jsonl"
    path.write_text('{"bad": 1}\n' + path.read_text())
    r = CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "3", "--run", str(run)])
    flat = " ".join(r.output.split())
    assert r.exit_code == 1 and f"line 1 of {path} is not a valid trajectory: task: Field required" in flat


def test_repair_keeps_complete_lines(tmp_path):
    folder = RunFolder(tmp_path)
    folder.trajectories_path.write_text('{"a": 1}\n{"b": 2}\n{"c":')
    assert folder.repair() == len('{"c":')
    assert folder.trajectories_path.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert folder.repair() == 0


def test_collect_refuses_to_run_unsandboxed_unless_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTKD_SANDBOX", raising=False)
    monkeypatch.setattr("agentkd.sandbox.isolation.bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    args = ["collect", "--env", "factqa", "--teacher", "reference", "--n", "2", "--run", str(tmp_path / "s")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "no sandbox is available" in refused.output and "--sandbox none" in refused.output
    assert not (tmp_path / "s" / "trajectories.jsonl").exists()
    allowed = CliRunner().invoke(app, args + ["--sandbox", "none"])
    assert allowed.exit_code == 0, allowed.output
    assert len(lines(tmp_path / "s")) == 2


def test_ctrl_c_stops_a_collection_within_seconds_and_keeps_what_was_written(tmp_path):
    run = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "agentkd.cli", "collect", "--env", SLOW_ENV, "--teacher", "reference",
           "--n", "60", "--concurrency", "2", "--run", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_lines(run, 3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10 and proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "resume" in err
    kept = lines(run)
    assert 3 <= len(kept) < 60 and all(r["success"] for r in kept)


def test_a_torn_line_cut_on_resume_is_reported(tmp_path):
    run = tmp_path / "torn"
    args = ["collect", "--env", "factqa", "--teacher", "reference", "--run", str(run)]
    assert CliRunner().invoke(app, [*args, "--n", "2"]).exit_code == 0
    with open(run / "trajectories.jsonl", "a") as handle:
        handle.write('{"schema_version": 2, "task"')
    again = CliRunner().invoke(app, [*args, "--n", "3"])
    assert again.exit_code == 0 and "cut a torn last line (28 bytes" in again.output


def test_a_second_writer_of_the_same_folder_is_refused_until_the_first_closes(tmp_path):
    first, second = RunFolder(tmp_path / "r"), RunFolder(tmp_path / "r")
    identity = {"command": "collect", "env": "factqa"}
    first.start(identity, {})
    with pytest.raises(RunFolderError, match=rf"another process \(pid {os.getpid()}\) is writing .*trajectories.jsonl"):
        second.start(identity, {})
    first.close()
    second.start(identity, {})  # the lock went with the first writer
    second.close()


def test_the_writer_lock_is_released_when_a_collection_has_nothing_to_run(tmp_path):
    run = tmp_path / "r"
    for _ in range(2):  # the second call finds every episode written, returns early, and must not keep the lock
        assert CliRunner().invoke(app, ["collect", "--env", "factqa", "--teacher", "reference", "--n", "2",
                                        "--run", str(run)]).exit_code == 0
    RunFolder(run).acquire()
