"""RunLayout: the one owner of every path inside a run folder. No other module spells a sub-path.

```
RUN/
  run.json                 identity, specs (env, teacher), settings, versions
  trajectories.jsonl       the teacher's episodes, append-only (trajectories.torn: a cut torn line)
  failed.jsonl             failed episodes set apart by `agentkd train` (kept when a student is replaced)
  preferences.jsonl        (prompt, chosen, rejected) step pairs with provenance (`agentkd train --stage dpo`)
  index/                   FAISS demonstration store (`agentkd index`)
  student/                 `agentkd train`: adapter/, merged/, checkpoints/, config.yaml, data.json, train_log.jsonl,
                           student.gguf (merged/ for llama.cpp; `agentkd export`)
  student-dpo/             `agentkd train --stage dpo` on top of student/: adapter/, merged/, checkpoints/, ...
  eval/<name>.json         evaluation reports (the only *.json files in eval/)
  eval/<name>.jsonl        their trajectories
  eval/settings/<name>.json  each evaluation's identity and settings (resume checks)
  targets/<eval>.json      tasks chosen by targeted collection (`agentkd collect --on-failures EVAL`), kept for resume
  report.html              the run's report
  datasets/<what>/<format>/  `agentkd export --format hf|parquet|jsonl`: trajectories, sft or preferences as a
                           Hugging Face dataset with its card (README.md) and agentkd_dataset.json
  rounds/<k>/              improvement round k (`agentkd improve`): a run folder of its own (run.json, trajectories.jsonl
                           = the trajectories it inherited + its new ones, student/, eval/probe.json, eval/student-sft.json,
                           targets/probe.json ...) plus plan.json (its settings and probe tasks) and round.json (its
                           summary, written last: a round with round.json is finished and never touched again)
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agentkd.errors import RunFolderError

STUDENT_MARKER = "agentkd_student.json"
"""Written next to merged student weights: tells policies to use the short student prompt."""
TRAINED = "trained"
"""The student model name that means "this run's fine-tuned student"."""
TRAINED_DPO = "trained-dpo"
"""The student model name that means "this run's student after the preference (DPO) stage"."""
TRAINED_NAMES = (TRAINED, TRAINED_DPO)


def run_path_problem(path: str | Path) -> str | None:
    """Why `path` cannot be a run folder (it, or a folder above it, is a file), or None when it can."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() or place.is_symlink():
            if place.is_dir():
                return None
            what = "is a file" if place == path else f"lies under {place}, which is a file"
            return f"{path} {what}, not a folder: give the path of a run folder (created when missing)"
    return None


def check_run_path(path: str | Path) -> None:
    """RunFolderError when `path` cannot be a run folder (see `run_path_problem`)."""
    problem = run_path_problem(path)
    if problem:
        raise RunFolderError(problem)


class RunLayout:
    """Paths of one run folder (nothing is created or read here)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    # collection ---------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "run.json"

    @property
    def trajectories(self) -> Path:
        return self.root / "trajectories.jsonl"

    @property
    def failed_episodes(self) -> Path:
        return self.root / "failed.jsonl"

    # training-free route ------------------------------------------------------------
    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    # fine-tuning ----------------------------------------------------------------------
    @property
    def student_dir(self) -> Path:
        return self.root / "student"

    @property
    def student_adapter(self) -> Path:
        return self.student_dir / "adapter"

    @property
    def student_merged(self) -> Path:
        return self.student_dir / "merged"

    @property
    def student_gguf(self) -> Path:
        """The merged student as one GGUF file for llama.cpp (`agentkd train` / `agentkd export`)."""
        return self.student_dir / "student.gguf"

    @property
    def student_checkpoints(self) -> Path:
        return self.student_dir / "checkpoints"

    @property
    def student_config(self) -> Path:
        return self.student_dir / "config.yaml"

    @property
    def student_data(self) -> Path:
        return self.student_dir / "data.json"

    @property
    def train_log(self) -> Path:
        return self.student_dir / "train_log.jsonl"

    def has_trained_student(self) -> bool:
        return (self.student_merged / "config.json").is_file()

    def trained_student(self) -> Path:
        """RUN/student/merged, or a clear error when `agentkd train` has not finished for this run."""
        if not self.has_trained_student():
            raise RunFolderError(f"{self.root} has no trained student ({self.student_merged} is missing); "
                                 f"run `agentkd train --run {self.root}` first")
        return self.student_merged

    # preference stage ----------------------------------------------------------------------
    @property
    def preferences(self) -> Path:
        return self.root / "preferences.jsonl"

    @property
    def dpo_dir(self) -> Path:
        return self.root / "student-dpo"

    @property
    def dpo_merged(self) -> Path:
        return self.dpo_dir / "merged"

    @property
    def dpo_gguf(self) -> Path:
        """The preference-trained student as one GGUF file for llama.cpp (`agentkd train --stage dpo`)."""
        return self.dpo_dir / "student.gguf"

    def gguf_of(self, name: str) -> Path:
        """Where the GGUF export of `trained` (RUN/student/student.gguf) or `trained-dpo` lives."""
        return self.dpo_gguf if name == TRAINED_DPO else self.student_gguf

    @property
    def dpo_train_log(self) -> Path:
        return self.dpo_dir / "train_log.jsonl"

    def trained_model(self, name: str) -> Path:
        """The folder of `trained` (RUN/student/merged) or `trained-dpo` (RUN/student-dpo/merged)."""
        if name == TRAINED_DPO:
            if not (self.dpo_merged / "config.json").is_file():
                raise RunFolderError(f"{self.root} has no preference-trained student ({self.dpo_merged} is missing); "
                                     f"run `agentkd train --run {self.root} --stage dpo` first")
            return self.dpo_merged
        return self.trained_student()

    def checkpoint_steps(self) -> list[int]:
        """Optimizer steps of the saved training checkpoints (the Trainer's `checkpoint-<step>` folders)."""
        return sorted(int(p.name.rpartition("-")[2]) for p in self.student_checkpoints.glob("checkpoint-*")
                      if p.name.rpartition("-")[2].isdigit())

    def has_checkpoint(self) -> bool:
        return bool(self.checkpoint_steps())

    # evaluation -----------------------------------------------------------------------
    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def eval_report(self, name: str) -> Path:
        return self.eval_dir / f"{_checked(name)}.json"

    def eval_trajectories(self, name: str) -> Path:
        return self.eval_dir / f"{_checked(name)}.jsonl"

    def eval_settings(self, name: str) -> Path:
        return self.eval_dir / "settings" / f"{_checked(name)}.json"

    def eval_table(self, name: str) -> Path:
        """A comparison table over several evaluations (e.g. the cost table of `agentkd bench icd`)."""
        return self.eval_dir / "tables" / f"{_checked(name)}.json"

    def legacy_eval_settings(self, name: str) -> Path:
        """Where agentkd 0.1 runs kept an evaluation's settings (beside the reports)."""
        return self.eval_dir / f"{_checked(name)}.config.json"

    def eval_reports(self) -> dict[str, Path]:
        """name -> report of every finished evaluation."""
        if not self.eval_dir.is_dir():
            return {}
        return {p.stem: p for p in sorted(self.eval_dir.glob("*.json")) if not p.name.endswith(".config.json")}

    # calibration -----------------------------------------------------------------------------
    @property
    def calibration_dir(self) -> Path:
        return self.root / "calibration"

    def calibration_trajectories(self, name: str) -> Path:
        """The teacher's episodes of `agentkd calibrate`, each step with the student's scored action beside it."""
        return self.calibration_dir / f"{_checked(name)}.jsonl"

    def calibration_settings(self, name: str) -> Path:
        return self.calibration_dir / "settings" / f"{_checked(name)}.json"

    @property
    def traffic_calibration(self) -> Path:
        """The cascade gateway's threshold chosen from its graded traffic (`agentkd calibrate --traffic`)."""
        return self.calibration_dir / "gateway" / "traffic.json"

    def calibration_report(self, name: str) -> Path:
        """The chosen threshold, the curve it was chosen on and the calibrated policy spec."""
        return self.calibration_dir / f"{_checked(name)}.json"

    # datasets ------------------------------------------------------------------------------
    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def dataset_dir(self, what: str, fmt: str) -> Path:
        """Where `agentkd export --what WHAT --format FMT` writes by default: RUN/datasets/<what>/<format>."""
        return self.datasets_dir / _checked(what) / _checked(fmt)

    def eval_settings_record(self, name: str) -> dict[str, Any] | None:
        """What RUN/eval/settings/<name>.json holds (or an agentkd-0.1 `.config.json`); None when unreadable."""
        return read_json(self.eval_settings(name)) or read_json(self.legacy_eval_settings(name))

    def eval_split(self, name: str) -> str | None:
        """The split an evaluation ran on, as its settings record it (None when unrecorded)."""
        return (self.eval_settings_record(name) or {}).get("identity", {}).get("split")

    # targeted collection -------------------------------------------------------------------
    def targets(self, eval_name: str) -> Path:
        """The tasks `agentkd collect --on-failures EVAL` chose (written once, so a resumed collection keeps them)."""
        return self.root / "targets" / f"{_checked(eval_name)}.json"

    # improvement rounds --------------------------------------------------------------------
    @property
    def rounds_dir(self) -> Path:
        return self.root / "rounds"

    def round_dir(self, number: int) -> Path:
        """RUN/rounds/<k>: round k's run folder (k >= 1; round 0 is the run itself)."""
        if number < 1:
            raise ValueError(f"round numbers start at 1 (round 0 is the run itself), got {number}")
        return self.rounds_dir / str(number)

    def round_layout(self, number: int) -> "RunLayout":
        return RunLayout(self.round_dir(number))

    def round_numbers(self) -> list[int]:
        """The rounds that have a folder, in order."""
        if not self.rounds_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.rounds_dir.iterdir() if p.is_dir() and p.name.isdigit())

    @property
    def round_plan(self) -> Path:
        """In a round folder: the round's settings and probe tasks (written first)."""
        return self.root / "plan.json"

    @property
    def round_summary(self) -> Path:
        """In a round folder: the round's summary (written last; its presence means the round is finished)."""
        return self.root / "round.json"

    @property
    def rounds_summary(self) -> Path:
        """RUN/rounds/summary.json: round 0 (the run itself) and every finished round, as `agentkd improve` prints."""
        return self.rounds_dir / "summary.json"

    # report ------------------------------------------------------------------------------
    @property
    def report_html(self) -> Path:
        return self.root / "report.html"


def read_json(path: Path) -> dict[str, Any] | None:
    """A run file's JSON object; None when the file is missing or not valid JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def _checked(name: str) -> str:
    if not name or os.sep in name or name.startswith(".") or (os.altsep and os.altsep in name):
        raise ValueError(f"{name!r} is not a valid evaluation name: use letters, digits, '-' or '_'")
    return name


def is_trained_student(model: str | Path) -> bool:
    """Whether a student model is one `agentkd train` wrote (and so expects the short student prompt):
    the name `trained`, or a folder (`hf/<folder>` too) holding the agentkd marker, or its GGUF export
    (`gguf/RUN/student/student.gguf`)."""
    text = str(model)
    if text in TRAINED_NAMES:
        return True
    if text.startswith("gguf/"):  # RUN/student/student.gguf: the export of RUN/student/merged
        file = Path(text.removeprefix("gguf/"))
        return file.suffix == ".gguf" and (file.parent / "merged" / STUDENT_MARKER).is_file()
    return (Path(text.removeprefix("hf/")) / STUDENT_MARKER).is_file()
