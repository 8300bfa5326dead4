"""The README and docs/ say what is true: the site builds strictly, the Python blocks run (or at least compile
against the real package), and every command line in a code block or inline names a real command with real
options. tests/test_readme.py and tests/test_docs_environments.py run the rest of the blocks."""

import ast
import importlib.util
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

import agentkd
from agentkd.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FILES = [README, *PAGES]
# A block opens with a line "```lang" (indented blocks inside list items too) and closes with "```" at the same
# indentation; fences inside strings don't count.
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.DOTALL | re.MULTILINE)
TEST_COMMAND = ".venv/bin/python -m pytest -q"


def blocks(path: Path, lang: str) -> list[str]:
    found = []
    for m in FENCE.finditer(path.read_text()):
        if m.group(2) == lang:
            indent = len(m.group(1))
            found.append("\n".join(line[indent:] for line in m.group(3).splitlines()) + "\n")
    return found


def block_with(path: Path, text: str) -> str:
    return next(b for b in blocks(path, "python") if text in b)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ------------------------------------------------------------------------------------------- the site and README


def test_docs_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (it is in the `test` extra: pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_docs_page_is_in_the_site_nav():
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(entry):
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, list):
            for item in entry:
                yield from pages(item)
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from pages(value)

    assert sorted(pages(nav)) == sorted(str(p.relative_to(DOCS)) for p in PAGES)


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"the README has {len(lines)} lines; move details to docs/"


def test_links_point_at_files_that_exist():
    for path in FILES:
        text = FENCE.sub("", path.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file = (path.parent / target.split("#")[0]).resolve()
            assert file.exists(), f"{rel(path)} links to {target}, which does not exist"


def test_results_pages_are_dated():
    for page in (DOCS / "results").glob("*.md"):
        if page.name != "index.md":
            date = re.match(r"(\d{4}-\d{2}-\d{2})-", page.name)
            assert date, f"{rel(page)}: results pages are named YYYY-MM-DD-topic.md"
            assert page.read_text().startswith(f"# {date.group(1)}: "), f"{rel(page)} must open with its date"
            assert "```bash" in page.read_text(), f"{rel(page)} must say which command ran"


def test_no_work_log_wording():
    for path in FILES:
        text = path.read_text()
        for phrase in ("goal:", "the issue measured", "other engineers", "this session", "Goals of the issue"):
            assert phrase not in text, f"{rel(path)} says {phrase!r}: write for users"


def test_ci_runs_the_readme_setup_lint_and_test_commands():
    readme = "".join(blocks(README, "bash"))
    assert "./setup.sh\n" in readme and TEST_COMMAND + "\n" in readme
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == ["./setup.sh", ".venv/bin/ruff check .", TEST_COMMAND]


def setup_message() -> str:
    """What ./setup.sh prints last."""
    last = [line for line in (ROOT / "setup.sh").read_text().splitlines() if line.startswith("echo ")][-1]
    return last.removeprefix("echo ").strip('"')


def test_readme_quotes_what_setup_prints_last():
    assert f"`{setup_message()}`" in README.read_text()


def test_readme_shows_what_the_pipeline_prints(tmp_path):
    from agentkd.cli import pipeline as cli_pipeline
    from agentkd.pipeline import PipelineSettings, stages

    shown = next(b for b in blocks(README, "text") if b.startswith("[1/")).splitlines()
    planned = stages(tmp_path / "demo", PipelineSettings())
    assert shown[:len(planned)] == [f"[{i}/{len(planned)}] {s.title}" for i, s in enumerate(planned, 1)]
    title, header, *rows, report = shown[len(planned):]
    source = inspect.getsource(cli_pipeline)
    assert title.startswith("agentkd pipeline: factqa, 10 held-out test tasks (")
    assert "agentkd pipeline: {env}, {eval_tasks} held-out test tasks (" in source
    columns = [c.strip() for c in header.strip("┃ ").split("┃")]
    assert all(f'"{c}"' in source for c in columns), columns
    assert [row.split("│")[1].strip() for row in rows] == [s.report for s in planned if s.report]
    assert report == "report: runs/demo/report.html (open it in a browser; `agentkd report --run runs/demo` refreshes it)"
    assert "report: {path} (open it in a browser; `agentkd report --run {run}` refreshes it)" in source


# ------------------------------------------------------------------------------------------------- Python blocks


def test_docs_sandbox_example_runs(capsys):
    exec(compile(block_with(DOCS / "sandbox.md", "PythonSandbox("), "docs/sandbox.md", "exec"), {})
    assert capsys.readouterr().out.startswith("42\n None False ")


def test_docs_policy_kind_example_runs(capsys):
    namespace: dict = {}
    exec(compile(block_with(DOCS / "runs.md", 'register_policy("echo"'), "docs/runs.md", "exec"), namespace)
    assert "kind='echo'" in capsys.readouterr().out
    env = namespace["policy"]
    assert env.spec.settings == {"answer": "1873"}


def test_docs_agent_example_runs_on_the_readme_environment(tmp_path, monkeypatch):
    env_file = tmp_path / "path" / "to" / "notes_env.py"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(next(b for b in blocks(README, "python") if "environment = Environment(" in b))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block_with(DOCS / "agent.md", "load_environment("), "docs/agent.md", "exec"), namespace)
    assert namespace["trajectory"].success
    assert namespace["graph"] is not None


def test_readme_check_env_command_passes_on_the_readme_environment(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    (tmp_path / "myenv.py").write_text(next(b for b in blocks(README, "python") if "environment = Environment(" in b))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    line = next(line for b in blocks(README, "bash") for line in command_lines(b) if " check-env " in line)
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    assert result.exit_code == 0, result.output
    assert "checks passed" in result.output


def test_every_python_block_compiles_and_imports_real_names():
    for path in FILES:
        for block in blocks(path, "python"):
            tree = ast.parse(block, filename=rel(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "agentkd":
                    for alias in node.names:
                        assert hasattr(agentkd, alias.name), f"{rel(path)}: agentkd has no {alias.name}"


def test_yaml_blocks_are_training_configs():
    from agentkd import TrainConfig

    found = [(path, b) for path in FILES for b in blocks(path, "yaml")]
    assert found
    for path, block in found:
        TrainConfig.model_validate(yaml.safe_load(block))


def test_run_folder_layout_names_real_paths():
    source = (ROOT / "agentkd" / "run" / "layout.py").read_text()
    layout = next(b for b in blocks(DOCS / "runs.md", "text") if b.startswith("RUN/run.json"))
    for line in layout.splitlines():
        for part in line.split()[0].removeprefix("RUN/").split("/"):
            if part and "<" not in part:
                assert f'"{part}"' in source or f"{part}/" in source or f" {part} " in source, (line, part)


# ------------------------------------------------------------------------------------------------- command lines

CLI = get_command(app)
ALLOWED = {"./setup.sh", "mkdocs", "ray", "kill", "export", "pip"}


def command_lines(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comment lines and trailing comments dropped."""
    lines, pending = [], ""
    for raw in block.splitlines():
        line = (pending + " " + raw.strip()) if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        pending = ""
        line = re.sub(r"\s+#\s.*$", "", line)
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def check_agentkd(args: list[str], where: str) -> None:
    """`agentkd ARGS`: the command exists and every --option is one of its options."""
    if not args or args[0] == "...":
        return
    command = CLI.commands.get(args[0])
    assert command is not None, f"{where}: no command `agentkd {args[0]}`"
    rest = args[1:]
    if hasattr(command, "commands"):  # a group: `agentkd models list`
        if not rest or rest[0].startswith("-") or rest[0] == "...":
            return
        sub = command.commands.get(rest[0])
        assert sub is not None, f"{where}: no command `agentkd {args[0]} {rest[0]}`"
        command, rest = sub, rest[1:]
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}
    for token in rest:
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", token):
            assert option in options, f"{where}: `agentkd {args[0]}` has no option {option}"


def check_tool(args: list[str], where: str) -> None:
    """`python benchmarks/NAME.py ARGS`: the script exists and defines every --option used."""
    script = ROOT / args[0]
    assert script.is_file(), f"{where}: {args[0]} does not exist"
    source = script.read_text()
    for token in args[1:]:
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", token):
            assert f'"{option}"' in source, f"{where}: {args[0]} has no option {option}"


def check_command(line: str, where: str) -> None:
    tokens = shlex.split(line)
    while tokens and (re.match(r"^[A-Z_]+=", tokens[0]) or tokens[0] == "time"):
        tokens = tokens[1:]
    program, args = tokens[0], tokens[1:]
    if program in ("agentkd", ".venv/bin/agentkd"):
        check_agentkd(args, where)
    elif program in ("python", ".venv/bin/python") and args[:2] == ["-m", "agentkd.cli"]:
        check_agentkd(args[2:], where)
    elif program in ("python", ".venv/bin/python") and args[:2] == ["-m", "pytest"]:
        assert line in (TEST_COMMAND, "pytest -q"), f"{where}: the test command is `{TEST_COMMAND}`"
    elif program == "python" and args and args[0].startswith("benchmarks/"):
        check_tool(args, where)
    elif program == "accelerate":
        config = args[args.index("--config_file") + 1]
        assert (ROOT / config).is_file(), f"{where}: {config} does not exist"
        check_agentkd(args[args.index("agentkd.cli") + 1:], where)
    else:
        assert program in ALLOWED, f"{where}: unknown program {program!r} in `{line}`"


def all_command_lines():
    for path in FILES:
        for block in blocks(path, "bash"):
            for line in command_lines(block):
                yield rel(path), line


def test_command_blocks_use_real_commands_and_options():
    lines = list(all_command_lines())
    assert len(lines) > 50
    for where, line in lines:
        check_command(line, where)


def test_inline_commands_use_real_commands_and_options():
    checked = 0
    for path in FILES:
        prose = FENCE.sub("", path.read_text())
        for span in re.findall(r"`([^`]+)`", prose):
            span = " ".join(span.split())
            if span == setup_message():  # output, not a command
                continue
            if re.match(r"(\.venv/bin/)?agentkd [a-z]", span) or re.match(r"python (benchmarks/|-m agentkd\.cli )", span):
                try:
                    tokens = shlex.split(span)
                except ValueError:  # an unbalanced quote inside prose: check the plain words
                    tokens = span.split()
                if tokens[0].endswith("agentkd"):
                    check_agentkd([t for t in tokens[1:] if t != "..."], f"{rel(path)}: `{span}`")
                else:
                    check_command(span, f"{rel(path)}: `{span}`")
                checked += 1
    assert checked > 50


def _commands(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def test_every_command_shows_one_example_that_uses_its_real_options():
    for path, command in _commands(CLI):
        examples = re.findall(r"Example: (agentkd .+)", command.help or "")
        assert len(examples) == 1, f"`agentkd {' '.join(path)}` --help shows no example"
        check_command(examples[0], f"agentkd {' '.join(path)} --help")
