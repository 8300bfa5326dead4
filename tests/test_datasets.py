"""`agentkd export --format hf|parquet|jsonl`: a real run's trajectories and SFT conversations as Hugging Face
datasets, read back identical (records, and the tokenised SFT data `agentkd train --dataset` builds from them)."""

import asyncio
import json

import pytest
from typer.testing import CliRunner

from agentkd import ReferencePolicy
from agentkd.cli import app
from agentkd.collect import collect
from agentkd.run import RunFolder
from agentkd.train.dataset_export import (
    DatasetExportError,
    adopt_dataset,
    exported_conversations,
    exported_trajectories,
    load_exported,
)

FORMATS = ["hf", "parquet", "jsonl"]


@pytest.fixture(scope="module")
def run(factqa, tmp_path_factory):
    """4 reference episodes on train tasks and 2 on test tasks, in one run folder."""
    path = tmp_path_factory.mktemp("dataset_run")
    folder = RunFolder(path)
    folder.start({"command": "collect", "env": "factqa", "teacher": "reference", "split": "train"}, {})
    tasks = factqa.tasks("train", 4) + factqa.tasks("test", 2)
    asyncio.run(collect(factqa, ReferencePolicy(), tasks, folder, concurrency=2))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_trajectories_round_trip_in_every_format(run, tmp_path, fmt):
    out = tmp_path / fmt
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    original = {t.task.id: t for t in RunFolder(run).iter_trajectories()}
    meta, data = load_exported(out)
    assert meta.what == "trajectories" and meta.format == fmt and meta.splits == {"test": 2, "train": 4}
    assert sorted(data) == ["test", "train"] and data["train"].num_rows == 4
    back = exported_trajectories(out, "train") + exported_trajectories(out, "test")
    assert {t.task.id: t for t in back} == original  # the same records, field for field
    row = data["train"][0]
    assert row["steps"] == len(original[row["task_id"]].steps) and row["success"] is True
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "factqa" in card and "teacher: `reference`" in card
    assert "train 4" in card and "test 2" in card and "agentkd 0.1" in card


def test_parquet_and_jsonl_exports_load_with_plain_datasets(run, tmp_path):
    """The card's YAML header names the files: `datasets.load_dataset(DIR)` finds both splits without agentkd."""
    from datasets import load_dataset

    for fmt in ("parquet", "jsonl"):
        out = tmp_path / fmt
        CliRunner().invoke(app, ["export", "--run", str(run), "--format", fmt, "--what", "sft", "--out", str(out)])
        data = load_dataset(str(out))
        assert data["train"].num_rows == 4 and data["test"].num_rows == 2
        assert data["train"][0]["messages"][0]["role"] == "system"


@pytest.mark.parametrize("fmt", FORMATS)
def test_sft_exports_give_the_same_training_data_as_the_run(run, factqa, tmp_path, fmt):
    from transformers import AutoTokenizer

    from agentkd.models.hf.local import resolve_local_model
    from agentkd.train import TrainConfig
    from agentkd.train.trainer import load_examples

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_local_model("smollm2-135m")))
    config = TrainConfig()
    from_run, report, _ = load_examples(run, factqa, tokenizer, config, 2048)
    assert len(from_run) == 6 and report.seen == 6  # the run trains on every trajectory it holds
    for what in ("sft", "trajectories"):
        out = tmp_path / what
        result = CliRunner().invoke(app, ["export", "--run", str(run), "--format", fmt, "--what", what,
                                          "--split", "train", "--out", str(out)])
        assert result.exit_code == 0, result.output
        examples, report, _ = load_examples(run, factqa, tokenizer, config, 2048, dataset=out)
        train_ids = {t.task.id for t in RunFolder(run).iter_trajectories() if t.task.split == "train"}
        expected = [e for e in from_run if e.task_id in train_ids]
        assert len(expected) == 4 and examples == expected, what  # token for token, mask for mask
        assert (report.conversations == 4) if what == "sft" else (len(report.kept) == 4)


def test_sft_conversations_are_the_students_view(run, factqa, tmp_path):
    from agentkd.train.sft_data import student_conversation

    out = tmp_path / "sft"
    CliRunner().invoke(app, ["export", "--run", str(run), "--format", "jsonl", "--what", "sft", "--out", str(out)])
    conversations = dict(exported_conversations(out, "test"))
    for traj in RunFolder(run).iter_trajectories():
        if traj.task.split == "test":
            assert conversations[traj.task.id] == student_conversation(factqa, traj)
    meta = json.loads((out / "agentkd_dataset.json").read_text())
    assert meta["filters"]["dedupe"] is True and "kept 6" in meta["filter_summary"]


def test_bad_exports_are_refused_and_nothing_is_lost(run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    assert runner.invoke(app, ["export", "--run", str(run), "--format", "hf", "--out", str(out)]).exit_code == 0
    before = sorted(p.name for p in out.iterdir())
    again = runner.invoke(app, ["export", "--run", str(run), "--format", "hf", "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output and sorted(p.name for p in out.iterdir()) == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    refused = runner.invoke(app, ["export", "--run", str(run), "--format", "jsonl", "--out", str(other), "--overwrite"])
    assert refused.exit_code == 1 and "not an agentkd dataset" in refused.output
    assert (other / "notes.txt").read_text() == "keep me"
    for args, message in ((["--format", "csv"], "'csv' is not one of"), (["--format", "hf", "--what", "x"], "--what"),
                          (["--format", "hf", "--split", "dev"], "--split"),
                          (["--what", "sft"], "--format hf|parquet|jsonl"),
                          (["--format", "hf", "--what", "preferences", "--out", str(tmp_path / "p")], "no preferences")):
        result = runner.invoke(app, ["export", "--run", str(run), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    with pytest.raises(DatasetExportError, match="no 'validation' split"):
        exported_trajectories(out, "validation")
    with pytest.raises(DatasetExportError, match="not an agentkd dataset export"):
        load_exported(tmp_path)


def test_a_new_run_adopts_the_exports_env_and_teacher(run, tmp_path):
    out = tmp_path / "sft"
    CliRunner().invoke(app, ["export", "--run", str(run), "--format", "parquet", "--what", "sft", "--out", str(out)])
    new = tmp_path / "new"
    adopt_dataset(new, out)
    folder = RunFolder(new)
    assert folder.env_spec() == RunFolder(run).env_spec() and folder.teacher_spec() == RunFolder(run).teacher_spec()
    assert folder.read_config()["details"]["dataset"] == str(out.resolve())
    adopt_dataset(run, out)  # the source run itself holds the same job
    stranger = tmp_path / "stranger"
    RunFolder(stranger).start({"command": "collect", "env": "mathcode", "teacher": "reference"}, {})
    from agentkd.errors import RunFolderError

    with pytest.raises(RunFolderError, match="different job"):
        adopt_dataset(stranger, out)


def test_train_refuses_a_folder_that_is_not_an_export(run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--run", str(tmp_path / "new"), "--dataset", str(run)])
    assert result.exit_code == 1 and "not an agentkd dataset export" in result.output
    assert not (tmp_path / "new").exists()
    result = runner.invoke(app, ["train", "--run", str(run), "--stage", "dpo", "--dataset", str(tmp_path)])
    assert result.exit_code == 2 and "sft stage" in result.output
    out = tmp_path / "pairs"
    CliRunner().invoke(app, ["export", "--run", str(run), "--format", "jsonl", "--what", "trajectories", "--out", str(out)])
    meta = json.loads((out / "agentkd_dataset.json").read_text())
    (out / "agentkd_dataset.json").write_text(json.dumps({**meta, "what": "preferences"}))
    with pytest.raises(DatasetExportError, match="trains on trajectories or sft"):
        adopt_dataset(tmp_path / "other", out)
