"""A newcomer's mistakes fail cleanly: one line naming the problem and what to do, a non-zero exit, no record of a
job that never ran an episode, nothing already written lost. Every command asserted runs as a user runs it, in a
subprocess (set-ups and retries run in this process); those that import the model stack take several seconds
and are marked slow."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentkd.cli import app
from agentkd.errors import RunFolderError
from agentkd.run import RunFolder

ROOT = Path(__file__).resolve().parents[1]
FLAWED = str(ROOT / "tests" / "envs" / "flawed.py")


def agentkd(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m agentkd.cli ARGS` with stdout and stderr merged in the order they were written."""
    return subprocess.run([sys.executable, "-m", "agentkd.cli", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {}), "COLUMNS": "200"})


def collect(run: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return agentkd("collect", "--env", FLAWED, "--teacher", "reference", "--run", str(run), *extra, env=env)


def collect_here(run: Path, *extra: str) -> int:
    """The same collection in this process (set-ups and retries: no second start-up); its exit code."""
    result = CliRunner().invoke(app, ["collect", "--env", FLAWED, "--teacher", "reference", "--run", str(run), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code


def error_line(output: str) -> str:
    """The one `error:` line (it must be the only one, and there must be no traceback)."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


def flat(output: str) -> str:
    """The output as one line of words: usage errors come in a box whose lines wrap."""
    return " ".join(output.replace("│", " ").split())


def trajectories(run: Path) -> list[str]:
    return (run / "trajectories.jsonl").read_text().splitlines()


# --run pointing at a regular file --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["collect", "--env", FLAWED, "--teacher", "reference"], ["pipeline"]])
def test_a_run_path_that_is_a_file_is_refused_when_parsing(tmp_path, command):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    done = agentkd(*command, "--run", str(notes))
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stdout and "FileExistsError" not in done.stdout
    assert (f"Invalid value for '--run': {notes} is a file, not a folder: give the path of a run folder"
            in flat(done.stdout))
    assert notes.read_text() == "my notes\n"
    under = agentkd(*command, "--run", str(notes / "run"))
    assert under.returncode == 2 and f"lies under {notes}, which is a file" in flat(under.stdout)


def test_the_library_refuses_a_run_path_that_is_a_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        RunFolder(notes).check({"command": "collect"})


# a grader that returns "yes" ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_grader_returning_text_names_the_grader_and_leaves_no_run_record(tmp_path):
    run = tmp_path / "run"
    done = collect(run, "--env-arg", "grader=yes")
    assert done.returncode == 1
    line = error_line(done.stdout)
    assert "the grader 'is_right' of environment 'flawed' returned 'yes' (str)" in line
    assert "a grader must return a score in [0, 1], a number" in line
    assert "Nothing was written" in done.stdout and "with other settings" in done.stdout
    assert not run.exists(), list(run.iterdir())
    # the retry with other settings is not refused as "a different job"
    assert collect_here(run, "--n", "2") == 0
    assert len(trajectories(run)) == 2


@pytest.mark.slow
def test_a_failure_after_some_episodes_keeps_them_and_says_so(tmp_path):
    run = tmp_path / "run"
    assert collect_here(run, "--env-arg", "grader=yes", "--env-arg", "yes_from=2", "--n", "2") == 0
    before = trajectories(run)
    again = collect(run, "--env-arg", "grader=yes", "--env-arg", "yes_from=2", "--n", "3")
    assert again.returncode == 1
    assert "returned 'yes'" in error_line(again.stdout) and "'train-2'" in again.stdout
    assert f"The 2 trajectories written so far are kept in {run / 'trajectories.jsonl'}" in again.stdout
    assert trajectories(run) == before and (run / "run.json").is_file()


def test_check_env_runs_every_check_and_names_the_grader(tmp_path):
    done = agentkd("check-env", FLAWED, "--env-arg", "grader=yes", "--n", "2")
    assert done.returncode == 1
    names = ["loads", "splits", "task ids", "tools", "grader", "state", "reference solver (train)",
             "reference solver (test)", "rejects a wrong answer"]
    for name in names:
        assert name in done.stdout
    line = error_line(done.stdout)
    assert line.startswith("error: 4 of 9 checks failed: grader, reference solver (train), reference solver (test), "
                           "rejects a wrong answer"), line
    assert "the grader 'is_right' of environment 'flawed' returned 'yes'" in done.stdout


# a tool that returns a set ------------------------------------------------------------------------------------------

def test_check_env_blames_a_tool_that_returns_a_set_not_the_grader(tmp_path):
    done = agentkd("check-env", FLAWED, "--env-arg", "tags=set", "--n", "2")
    assert done.returncode == 1
    line = error_line(done.stdout)
    assert line.startswith("error: 3 of 9 checks failed: tools, reference solver (train), reference solver (test)")
    assert "tool 'item_tags' returned a set" in done.stdout
    assert "see tools" in done.stdout


# a first attempt that fails -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_missing_api_key_leaves_no_record_and_a_retry_may_change_the_teacher(tmp_path):
    run = tmp_path / "run"
    no_key = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run([sys.executable, "-m", "agentkd.cli", "collect", "--env", FLAWED, "--teacher",
                           "openai/gpt-4o-mini", "--run", str(run), "--n", "1"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=180, check=False, env=no_key)
    assert done.returncode == 1
    assert "has no valid API key" in error_line(done.stdout) and "OPENAI_API_KEY" in done.stdout
    assert "kept in" not in done.stdout and "Nothing was written" in done.stdout
    assert not run.exists()
    assert collect_here(run, "--n", "1") == 0


def test_a_record_without_trajectories_says_how_to_start_afresh(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"identity": {"command": "collect", "teacher": "openai/gpt-4o-mini"}}))
    with pytest.raises(RunFolderError, match="holds no trajectory yet, so deleting .*run.json starts it afresh"):
        RunFolder(run).check({"command": "collect", "teacher": "reference"})


# an environment without the default splits ----------------------------------------------------------------------

@pytest.mark.slow
def test_missing_default_splits_warn_in_check_env_and_fail_eval_and_pipeline_cleanly(tmp_path):
    check = agentkd("check-env", FLAWED, "--env-arg", "splits=train", "--n", "1")
    assert check.returncode == 0, check.stdout
    assert ("warning: no 'test' split: `agentkd eval` evaluates on it unless given --split, and `agentkd pipeline` "
            "needs it") in " ".join(check.stdout.split())
    assert "all 8 checks passed (1 warning above)" in check.stdout

    run = tmp_path / "run"
    assert collect_here(run, "--env-arg", "splits=train") == 0
    evaluation = agentkd("eval", "--run", str(run), "--policy", "teacher")
    assert evaluation.returncode == 1
    line = error_line(evaluation.stdout)
    assert "unknown split 'test'; this environment has ['train']" in line and "--split" in line
    assert not (run / "eval").exists()

    fresh = tmp_path / "fresh"
    pipeline = agentkd("pipeline", "--run", str(fresh), "--env", FLAWED, "--env-arg", "splits=train")
    assert pipeline.returncode == 1
    line = error_line(pipeline.stdout)
    assert "environment 'flawed' has no 'test' split" in line and "evaluates on 'test'" in line
    assert not fresh.exists()


# serve with nothing to serve ------------------------------------------------------------------------------------

def test_serve_without_an_argument_says_what_is_missing():
    done = agentkd("serve")
    assert done.returncode == 2
    line = error_line(done.stdout)
    assert line.startswith("error: nothing to serve: give a GGUF model") and "--student RUN" in line
    assert "not both" not in line


# option values checked when parsing -----------------------------------------------------------------------------

CHOICES = [
    (["collect", "--env", "x", "--teacher", "reference", "--run", "r"], "--sandbox", "auto"),
    (["collect", "--env", "x", "--teacher", "reference", "--run", "r"], "--backend", "local"),
    (["collect", "--env", "x", "--teacher", "reference", "--run", "r"], "--group-by", "template"),
    (["eval", "--run", "r", "--policy", "teacher"], "--sandbox", "auto"),
    (["eval", "--run", "r", "--policy", "teacher"], "--backend", "local"),
    (["eval", "--run", "r", "--policy", "cascade"], "--agreement", "result"),
    (["eval", "--run", "r"], "--policy", "teacher"),
    (["pipeline"], "--route", "sft"),
    (["pipeline"], "--sandbox", "auto"),
    (["improve", "--run", "r"], "--probe", "student"),
    (["improve", "--run", "r"], "--group-by", "template"),
    (["train", "--run", "r"], "--stage", "sft"),
    (["export", "--run", "r"], "--format", "gguf"),
    (["export", "--run", "r"], "--type", "f16"),
    (["export", "--run", "r"], "--student", "trained"),
    (["export", "--run", "r", "--format", "hf"], "--what", "sft"),
    (["export", "--run", "r", "--format", "hf"], "--split", "train"),
    (["check-env", "x"], "--sandbox", "auto"),
    (["serve", "--student", "r"], "--backend", "auto"),
]

# Runs each command in-process with a wrong value and reports the exit code, the message and whether anything
# heavy was imported.
PARSE_PROBE = textwrap.dedent('''
    import io, json, sys
    from contextlib import redirect_stderr
    from agentkd.cli import app
    out = []
    for args in json.loads(sys.argv[1]):
        err = io.StringIO()
        with redirect_stderr(err):
            try:
                app(args, prog_name="agentkd")
            except SystemExit as exc:
                code = exc.code
        heavy = sorted(m for m in ("litellm", "langgraph", "faiss", "torch", "agentkd.sandbox.host",
                                   "agentkd.collect", "agentkd.env") if m in sys.modules)
        out.append({"code": code, "message": " ".join(err.getvalue().split()), "heavy": heavy})
    print(json.dumps(out))
''')


def test_choice_options_are_checked_when_parsing_before_any_import(tmp_path):
    calls = [[*command, option, "foo"] for command, option, _ in CHOICES]
    done = subprocess.run([sys.executable, "-c", PARSE_PROBE, json.dumps(calls)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    for (command, option, valid), result in zip(CHOICES, json.loads(done.stdout)):
        assert result["code"] == 2, (command, option, result)
        assert f"Invalid value for '{option}': 'foo' is not one of" in result["message"], (command, option, result)
        assert repr(valid) in result["message"], (command, option, result)
        assert result["heavy"] == [], (command, option, result)


def test_a_wrong_agentkd_sandbox_variable_is_named(tmp_path):
    done = agentkd("collect", "--env", FLAWED, "--teacher", "reference", "--run", str(tmp_path / "run"),
                   env={"AGENTKD_SANDBOX": "foo"})
    assert done.returncode == 2
    assert ("Invalid value for '--sandbox': not given, and $AGENTKD_SANDBOX is 'foo', not one of 'auto', 'bwrap', "
            "'none': fix or unset it") in flat(done.stdout)
    assert not (tmp_path / "run").exists()


# trajectories.jsonl: an invalid line, a torn line ----------------------------------------------------------------

@pytest.mark.slow
def test_an_invalid_line_is_named_with_its_reason_and_kept(tmp_path):
    run = tmp_path / "run"
    assert collect_here(run, "--n", "2") == 0
    rows = trajectories(run)
    broken = json.loads(rows[1])
    del broken["task"]
    text = "\n".join([rows[0], json.dumps(broken)]) + "\n"
    (run / "trajectories.jsonl").write_text(text)
    done = collect(run, "--n", "3")
    assert done.returncode == 1
    line = error_line(done.stdout)
    assert f"line 2 of {run / 'trajectories.jsonl'} is not a valid trajectory: task: Field required" in line
    assert "errors)" not in line
    assert (run / "trajectories.jsonl").read_text() == text


@pytest.mark.slow
def test_the_torn_line_notice_comes_before_the_summary(tmp_path):
    run = tmp_path / "run"
    assert collect_here(run, "--n", "1") == 0
    with open(run / "trajectories.jsonl", "a") as handle:
        handle.write('{"task": {"id": "cut')
    done = collect(run, "--n", "2")
    assert done.returncode == 0, done.stdout
    assert "repaired" in done.stdout and "collection" in done.stdout
    assert done.stdout.index("repaired") < done.stdout.index("episodes in run")
    assert len(trajectories(run)) == 2 and (run / "trajectories.torn").read_text() == '{"task": {"id": "cut\n'


# --help --------------------------------------------------------------------------------------------------------

COMMANDS = ["collect", "index", "train", "export", "eval", "pipeline", "improve", "bench", "bench icd", "report",
            "check-env", "serve", "models", "models list", "models install"]


def test_help_shows_brackets_bool_flags_household_and_takes_h():
    from agentkd.env.loading import builtin_names

    script = textwrap.dedent('''
        import io, json, sys
        from contextlib import redirect_stdout
        from agentkd.cli import app
        out = {}
        for command in json.loads(sys.argv[1]):
            for flag in ("-h", "--help"):
                text = io.StringIO()
                with redirect_stdout(text):
                    try:
                        app([*command.split(), flag], prog_name="agentkd")
                    except SystemExit as exc:
                        code = exc.code
                out[f"{command} {flag}"] = {"code": code, "text": text.getvalue()}
        print(json.dumps(out))
    ''')
    done = subprocess.run([sys.executable, "-c", script, json.dumps(COMMANDS)], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    helps = json.loads(done.stdout)
    for name, result in helps.items():
        assert result["code"] == 0 and "Usage:" in result["text"], name
        assert "<bool>" not in result["text"] and "BOOLEAN" not in result["text"], name
    assert "agentkd[ray]" in helps["collect --help"]["text"] and "agentkd[ray]" in helps["eval -h"]["text"]
    assert helps["collect -h"]["text"] == helps["collect --help"]["text"]
    for name in builtin_names():
        assert name in " ".join(helps["collect -h"]["text"].split()), name
        assert name in " ".join(helps["pipeline -h"]["text"].split()), name
        assert name in " ".join(helps["check-env -h"]["text"].split()), name
    assert "--rebuild" in helps["index -h"]["text"]


def test_a_bool_flag_takes_no_value():
    done = agentkd("index", "--run", "r", "--rebuild", "true")
    assert done.returncode == 2 and "Traceback" not in done.stdout
    assert "unexpected extra argument" in flat(done.stdout) and "(true)" in flat(done.stdout)


def test_the_environment_guide_names_every_builtin_and_the_default_splits():
    from agentkd.env.loading import builtin_names

    guide = (ROOT / "docs" / "environments.md").read_text()
    for name in builtin_names():
        assert f"| `{name}` |" in guide
    assert "`agentkd collect` runs on `train`, `agentkd eval`\n  on `test`" in guide


def test_the_choices_of_the_options_are_the_librarys():
    import typing

    import typer

    from agentkd.collect.targets import GroupBy
    from agentkd.pipeline import Route
    from agentkd.policies.agreement import AgreementMode
    from agentkd.policies.names import POLICY_CHOICES
    from agentkd.rounds.settings import ImproveSettings
    from agentkd.run.layout import TRAINED_NAMES
    from agentkd.sandbox.isolation import ISOLATIONS
    from agentkd.scale.backend import Backend
    from agentkd.train.dataset_export import FORMATS, SPLITS, WHATS
    from agentkd.train.export import OUTTYPES
    from agentkd.train.job import TrainJob
    from agentkd.train.serving import Backend as ServeBackend

    commands = typer.main.get_command(app).commands

    def choices(command: str, option: str) -> set[str]:
        (param,) = [p for p in commands[command].params if option in p.opts]
        return set(param.metavar.split("|"))

    def literal(annotation: object) -> set[str]:
        return set(typing.get_args(annotation))

    expected = {
        ("collect", "--sandbox"): set(ISOLATIONS), ("eval", "--sandbox"): set(ISOLATIONS),
        ("collect", "--backend"): literal(Backend.model_fields["kind"].annotation),
        ("eval", "--policy"): set(POLICY_CHOICES), ("eval", "--agreement"): literal(AgreementMode),
        ("collect", "--group-by"): literal(GroupBy), ("improve", "--group-by"): literal(GroupBy),
        ("improve", "--probe"): literal(ImproveSettings.model_fields["probe"].annotation),
        ("pipeline", "--route"): literal(Route),
        ("train", "--stage"): literal(TrainJob.model_fields["stage"].annotation),
        ("export", "--format"): {"gguf", *FORMATS}, ("export", "--what"): set(WHATS),
        ("export", "--split"): set(SPLITS), ("export", "--type"): set(OUTTYPES),
        ("export", "--student"): set(TRAINED_NAMES), ("serve", "--backend"): literal(ServeBackend),
    }
    for (command, option), values in expected.items():
        assert choices(command, option) == values, (command, option)


def test_every_bracket_in_the_help_is_shown():
    import io
    import re
    from contextlib import redirect_stdout

    import typer

    def leaves(command: object, path: list[str]):
        for name, inner in getattr(command, "commands", {}).items():
            yield from leaves(inner, [*path, name])
        if not hasattr(command, "commands"):
            yield path, command

    for path, command in leaves(typer.main.get_command(app), []):
        shown = io.StringIO()
        with redirect_stdout(shown), pytest.raises(SystemExit):
            app([*path, "--help"], prog_name="agentkd")
        text = flat(shown.getvalue())
        for written in [p.help or "" for p in command.params] + [command.help or ""]:
            for bracket in re.findall(r"\[[^\]]*\]", written.replace("\\[", "[")):
                assert bracket in text, (path, bracket)


def test_a_grader_must_return_a_score_in_0_1():
    from agentkd import Environment, GraderError, Task

    task = Task(id="a", prompt="p", answer="x")
    for value, score in ((True, 1.0), (0, 0.0), (0.5, 0.5)):
        env = Environment(name="g", tasks=[{"id": "a", "prompt": "p", "answer": "x"}], grader=lambda answer: value)
        assert env.grade("x", task).score == score
    for value in ("yes", None, float("nan"), 2.0, -0.1):
        env = Environment(name="g", tasks=[{"id": "a", "prompt": "p", "answer": "x"}], grader=lambda answer: value)
        with pytest.raises(GraderError, match=r"the grader '<lambda>' of environment 'g' returned .* for task 'a'; "
                                              r"a grader must return a score in \[0, 1\]"):
            env.grade("x", task)

    def fragile(answer: str) -> float:
        return float(int(answer) == 42)

    env = Environment(name="g", tasks=[{"id": "a", "prompt": "p", "answer": "42"}], grader=fragile)
    with pytest.raises(GraderError, match="the grader 'fragile' of environment 'g' raised ValueError: invalid literal"):
        env.grade("forty-two", task)


def test_a_record_a_failed_job_created_is_removed_and_nothing_else(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    folder = RunFolder(mine)
    folder.start({"command": "collect"}, {})
    folder.close()
    assert folder.discard_if_unused()
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "trajectories.jsonl.lock"]

    made = RunFolder(tmp_path / "new" / "run")
    made.start({"command": "collect"}, {})
    made.close()
    assert made.discard_if_unused() and not (tmp_path / "new").exists()

    kept = RunFolder(tmp_path / "kept")
    kept.start({"command": "collect"}, {})
    kept.trajectories_path.write_text('{"torn')
    kept.close()
    assert not kept.discard_if_unused() and kept.config_path.is_file()
    again = RunFolder(tmp_path / "kept")  # a later session did not create the record: it never removes it
    again.trajectories_path.unlink()
    again.start({"command": "collect"}, {})
    again.close()
    assert not again.discard_if_unused() and again.config_path.is_file()


def test_check_env_without_any_task_fails_splits_and_skips_what_needs_a_task():
    from agentkd import Environment
    from agentkd.agent.env_check import check_environment

    env = Environment(name="empty", tasks=lambda split: [], splits=["train", "test"], grader="exact")
    report = check_environment(env)
    assert [c.name for c in report.failed] == ["splits"]
    assert [c.name for c in report.skipped] == ["grader", "state", "reference solver", "rejects a wrong answer"]
    assert not report.ok and all("needs a task" in c.detail for c in report.skipped)
