"""A run's data as a Hugging Face dataset: `agentkd export --format hf|parquet|jsonl` and `agentkd train --dataset`.

Three kinds of rows (`what`), split by the tasks' split (train/test):
- `trajectories`: every trajectory of RUN/trajectories.jsonl; the `trajectory` column holds the full record as
  JSON (so a read-back gives the same `Trajectory`), the other columns are for browsing and filtering;
- `sft`: the filtered trajectories as the student's chat conversations (`messages`: role/content), what
  `agentkd train` tokenises (loss on the assistant turns);
- `preferences`: (prompt, chosen, rejected) step pairs from the run's evaluations (see agentkd.train.preferences).

Three on-disk formats: `hf` (`DatasetDict.save_to_disk`, read with `datasets.load_from_disk`), `parquet` and
`jsonl` (`data/<split>.parquet|jsonl`, read with `datasets.load_dataset(DIR)` thanks to the card's YAML header).
Every export has a dataset card (README.md: env, teacher, filters, counts, agentkd version) and
`agentkd_dataset.json` (the same facts as data, and the source run's run.json record, so that training from
the export can record where its data came from).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentkd.errors import AgentKDError
from agentkd.records import Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import RunLayout
from agentkd.version import __version__

Format = Literal["hf", "parquet", "jsonl"]
What = Literal["trajectories", "sft", "preferences"]
FORMATS: tuple[str, ...] = ("hf", "parquet", "jsonl")
WHATS: tuple[str, ...] = ("trajectories", "sft", "preferences")
SPLITS: tuple[str, ...] = ("train", "test", "all")
META_FILE = "agentkd_dataset.json"
CARD_FILE = "README.md"


class DatasetExportError(AgentKDError):
    """A dataset cannot be exported or read back (unknown format, nothing to export, not an agentkd export...)."""


class DatasetMeta(BaseModel):
    """What an export holds and where it came from (agentkd_dataset.json)."""

    what: str
    format: str
    splits: dict[str, int]
    """split -> rows."""
    source_run: str
    env: dict[str, Any] | None = None
    teacher: dict[str, Any] | None = None
    identity: dict[str, Any] = Field(default_factory=dict)
    """The source run's identity (run.json): a run trained from this export records it."""
    filters: dict[str, Any] | None = None
    """The filters applied (sft only)."""
    filter_summary: str | None = None
    agentkd_version: str = __version__
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


def trajectory_row(traj: Trajectory) -> dict[str, Any]:
    return {"task_id": traj.task.id, "split": traj.task.split, "policy": traj.policy, "status": traj.status,
            "success": traj.success, "score": float(traj.score), "steps": len(traj.steps),
            "prompt_tokens": traj.usage.prompt_tokens, "completion_tokens": traj.usage.completion_tokens,
            "final_answer": json.dumps(traj.final_answer, default=str), "trajectory": traj.model_dump_json()}


def _in_split(split: str, wanted: str) -> bool:
    return wanted == "all" or split == wanted


def _rows(run: Path, what: str, split: str, filters: Any) -> tuple[list[dict[str, Any]], str | None]:
    """(rows, filter summary) for one kind of export."""
    trajectories = [t for t in RunFolder(run).iter_trajectories() if _in_split(t.task.split, split)]
    if what == "trajectories":
        return [trajectory_row(t) for t in trajectories], None
    if what == "sft":
        from agentkd.env.loading import load_environment
        from agentkd.train.filters import filter_trajectories
        from agentkd.train.sft_data import student_conversation

        env = load_environment(RunFolder(run).env_spec())
        report = filter_trajectories(trajectories, filters)
        return [{"task_id": t.task.id, "split": t.task.split, "messages": student_conversation(env, t)}
                for t in report.kept], report.summary()
    from agentkd.train.preferences import build_preferences

    pairs, _counts = build_preferences(run, include_test=split != "train")
    return [{"id": p.id, "task_id": p.task_id, "split": p.split, "step_index": p.step_index, "source": p.source,
             "prompt": _messages(p.prompt), "chosen": p.chosen, "rejected": p.rejected,
             "provenance": json.dumps(p.provenance, default=str)} for p in pairs if _in_split(p.split, split)], None


def export_dataset(
    run: str | Path, fmt: str = "hf", what: str = "trajectories", split: str = "all", out: str | Path | None = None,
    filters: Any = None, overwrite: bool = False,
) -> tuple[Path, DatasetMeta]:
    """Write RUN's trajectories / SFT conversations / preference pairs as a dataset in `out` (default
    RUN/datasets/<what>/<format>); returns (folder, meta). `filters`: a FilterConfig for `sft` (default rules)."""
    import datasets
    from datasets import Dataset, DatasetDict

    from agentkd.train.filters import FilterConfig

    datasets.disable_progress_bars()  # the command shows its own status line

    for value, allowed, option in ((fmt, FORMATS, "--format"), (what, WHATS, "--what"), (split, SPLITS, "--split")):
        if value not in allowed:
            raise DatasetExportError(f"unknown {option} {value!r}; choose {', '.join(allowed)}")
    run = Path(run)
    folder = RunFolder(run)
    identity = folder.identity()  # a clear error when RUN is not a run folder
    layout = RunLayout(run)
    target = Path(out) if out is not None else layout.dataset_dir(what, fmt)
    if target.exists() and any(target.iterdir()):
        if not overwrite:
            raise DatasetExportError(f"{target} already exists and is not empty; pass --overwrite to replace it "
                                     "or --out to write elsewhere")
        if not (target / META_FILE).is_file():
            raise DatasetExportError(f"{target} is not an agentkd dataset export; it is not replaced: choose "
                                     "another --out")
    filters = filters or FilterConfig()
    rows, summary = _rows(run, what, split, filters)
    if not rows:
        hint = ("evaluate the trained student on the train split first (`agentkd eval --policy cascade --student "
                "trained --split train`)" if what == "preferences" else f"collect into {run} first, or choose "
                "another --split")
        raise DatasetExportError(f"{run} has no {what} rows for split {split!r}; {hint}")
    by_split: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(row)
    data = DatasetDict({name: Dataset.from_list(items) for name, items in sorted(by_split.items())})
    teacher = folder.teacher_spec()
    meta = DatasetMeta(what=what, format=fmt, splits={k: len(v) for k, v in data.items()}, source_run=str(run.resolve()),
                       env=folder.env_spec().model_dump(mode="json"),
                       teacher=teacher.model_dump(mode="json") if teacher else None, identity=identity,
                       filters=filters.model_dump(mode="json") if what == "sft" else None, filter_summary=summary)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if fmt == "hf":
        data.save_to_disk(str(tmp))
    else:
        (tmp / "data").mkdir()
        for name, dataset in data.items():
            path = tmp / "data" / f"{name}.{fmt}"
            if fmt == "parquet":
                dataset.to_parquet(str(path))
            else:
                dataset.to_json(str(path), lines=True)
    (tmp / META_FILE).write_text(meta.model_dump_json(indent=2))
    (tmp / CARD_FILE).write_text(dataset_card(meta))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target, meta


def dataset_card(meta: DatasetMeta) -> str:
    """The README.md of an export: a YAML header the Hub and `load_dataset` read, then what, whence and how much."""
    header = ["---", "tags:", "- agentkd", "- agent-trajectories", "- codeact"]
    if meta.format != "hf":
        header += ["configs:", "- config_name: default", "  data_files:"]
        for name in meta.splits:
            header += [f"  - split: {name}", f"    path: data/{name}.{meta.format}"]
    header.append("---")
    env = (meta.env or {}).get("given") or (meta.env or {}).get("target") or "?"
    teacher = json.dumps(meta.teacher) if meta.teacher else str(meta.identity.get("teacher", "?"))
    columns = {"trajectories": "`task_id`, `split`, `policy`, `status`, `success`, `score`, `steps`, token counts, "
                               "`final_answer` (JSON) and `trajectory` (the full agentkd Trajectory record as JSON)",
               "sft": "`task_id`, `split`, `messages` (the student's chat: short system prompt, task and observations "
                      "as user turns, thought + code as assistant turns; train on the assistant turns)",
               "preferences": "`id`, `task_id`, `split`, `step_index`, `source` (deferral | divergence), `prompt` "
                              "(messages), `chosen`, `rejected`, `provenance` (JSON)"}[meta.what]
    load = ("from datasets import load_from_disk\nds = load_from_disk(\"PATH\")" if meta.format == "hf"
            else "from datasets import load_dataset\nds = load_dataset(\"PATH\")")
    lines = [*header, "", f"# agentkd {meta.what}: {env}", "",
             f"Agent {meta.what} exported by agentkd {meta.agentkd_version} from the run `{meta.source_run}` "
             f"on {meta.created_at[:10]}.", "",
             f"- environment: `{env}` (spec: `{json.dumps(meta.env)}`)",
             f"- teacher: `{teacher}`",
             f"- rows: {', '.join(f'{name} {n}' for name, n in meta.splits.items())}"]
    if meta.filters is not None:
        lines += [f"- filters: `{json.dumps(meta.filters)}`", f"- filter outcome: {meta.filter_summary}"]
    lines += ["", "## Columns", "", columns, "", "## Loading", "", "```python", load, "```", "",
              "Train a student on it with `agentkd train --run NEW_RUN --dataset PATH` "
              "(trajectories or sft exports).", ""]
    return "\n".join(lines)


def read_meta(path: str | Path) -> DatasetMeta:
    """agentkd_dataset.json of an export; a clear error when `path` is not one."""
    file = Path(path) / META_FILE
    if not file.is_file():
        raise DatasetExportError(f"{path} is not an agentkd dataset export (no {META_FILE}); write one with "
                                 "`agentkd export --run RUN --format hf|parquet|jsonl`")
    return DatasetMeta.model_validate_json(file.read_text())


def load_exported(path: str | Path) -> tuple[DatasetMeta, Any]:
    """(meta, DatasetDict) of an export in any of the three formats."""
    import datasets
    from datasets import DatasetDict, load_dataset, load_from_disk

    datasets.disable_progress_bars()
    path = Path(path)
    meta = read_meta(path)
    if meta.format == "hf":
        return meta, load_from_disk(str(path))
    files = {name: str(path / "data" / f"{name}.{meta.format}") for name in meta.splits}
    missing = [f for f in files.values() if not Path(f).is_file()]
    if missing:
        raise DatasetExportError(f"{path} is incomplete: {', '.join(missing)} missing; export it again")
    loaded = load_dataset("parquet" if meta.format == "parquet" else "json", data_files=files)
    return meta, DatasetDict(loaded)


def exported_trajectories(path: str | Path, split: str = "train") -> list[Trajectory]:
    """The trajectories of a `trajectories` export (one split), as the records they were."""
    meta, data = load_exported(path)
    _check(meta, data, split, ("trajectories",))
    return [Trajectory.model_validate_json(row) for row in data[split]["trajectory"]]


def exported_conversations(path: str | Path, split: str = "train") -> list[tuple[str, list[dict[str, str]]]]:
    """(task id, student conversation) pairs of an `sft` export (one split)."""
    meta, data = load_exported(path)
    _check(meta, data, split, ("sft",))
    return [(row["task_id"], _messages(row["messages"])) for row in data[split]]


def _check(meta: DatasetMeta, data: Any, split: str, whats: tuple[str, ...]) -> None:
    if meta.what not in whats:
        raise DatasetExportError(f"the export holds {meta.what}, not {' or '.join(whats)}")
    if split not in data:
        raise DatasetExportError(f"the export has no {split!r} split (it has {', '.join(data) or 'none'}); "
                                 f"export it with --split {split} or --split all")


def adopt_dataset(run: str | Path, path: str | Path) -> DatasetMeta:
    """Make RUN a run folder for a student trained on the export at `path`: a new RUN gets the source run's
    identity and specs (env, teacher) in its run.json, so that `agentkd eval --run RUN` works; an existing RUN
    must hold the same job (RunFolderError otherwise)."""
    from agentkd.specs import EnvSpec, PolicySpec

    meta = read_meta(path)
    if meta.what not in ("trajectories", "sft"):
        raise DatasetExportError(f"{path} holds {meta.what}; `agentkd train --dataset` trains on trajectories or sft "
                                 "exports")
    specs: dict[str, Any] = {}
    if meta.env:
        specs["env"] = EnvSpec.model_validate(meta.env)
    if meta.teacher:
        specs["teacher"] = PolicySpec.model_validate(meta.teacher)
    folder = RunFolder(run)
    identity = meta.identity or {"command": "collect", "env": (meta.env or {}).get("given")}
    if folder.read_config() is None:
        folder.start(identity, {"command": "train", "dataset": str(Path(path).resolve()), "source_run": meta.source_run},
                     specs)
        folder.close()
    else:
        folder.check(identity)
    return meta
