"""`agentkd train`: filtered trajectories → SFT examples → TRL SFTTrainer (+ peft LoRA) → RUN/student/."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from agentkd.env.environment import Environment
from agentkd.errors import AgentKDError
from agentkd.records import Trajectory
from agentkd.run.folder import RunFolder
from agentkd.run.layout import STUDENT_MARKER, TRAINED, TRAINED_DPO, RunLayout
from agentkd.train.config import TrainConfig
from agentkd.train.filters import FilterReport, filter_trajectories
from agentkd.train.lm_head import score_positions
from agentkd.train.sft_data import SFTExample, build_examples

ProgressFn = Callable[[int, int, dict[str, float]], None]
logger = logging.getLogger(__name__)


class TrainingError(AgentKDError):
    """Training cannot start or did not finish (no data, a student folder in the way, ...)."""


@dataclass
class TrainResult:
    student_dir: Path
    merged_dir: Path
    adapter_dir: Path | None
    filters: FilterReport
    examples: int
    too_long: int
    train_tokens: int
    """Tokens fed through the model by this call (a resumed call counts from its checkpoint; no padding)."""
    seconds: float
    final_loss: float | None
    gguf: Path | None = None
    """RUN/student/student.gguf (the merged student for llama.cpp), None when its export failed."""
    gguf_error: str | None = None
    """Why the GGUF export failed (the merged weights are saved regardless); `agentkd export` retries it."""
    processes: int = 1
    """Training processes (several under `accelerate launch`); train_tokens counts all of them."""
    rank: int = 0
    """This process's index among them (0: the main process, the one that wrote the student)."""

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""CPU flags of native bf16 matrix instructions: AMX tiles (Intel Sapphire Rapids on), AVX-512 BF16 dot
products (Intel Cooper Lake, AMD Zen 4 on)."""


def cpu_bf16_flags(cpuinfo: str | None = None) -> set[str]:
    """The BF16_CPU_FLAGS this CPU has (read from /proc/cpuinfo, or the given text; none elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    flags = {word for line in cpuinfo.splitlines() if line.startswith("flags") for word in line.split()}
    return flags & set(BF16_CPU_FLAGS)


def cpu_has_bf16_units() -> bool:
    """True when this CPU has native bf16 matrix instructions and torch's CPU kernels (oneDNN) use them: there
    bf16 autocast trains faster than fp32 (docs/results/2026-12-05-qwen-student-training.md)."""
    if not cpu_bf16_flags():
        return False
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str) -> bool:
    """Whether training runs in bf16 (CUDA) or under bf16 autocast (CPU): `auto` chooses at run time, bf16 on
    CUDA and on CPUs with native bf16 units, fp32 elsewhere."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    return torch.cuda.is_available() or cpu_has_bf16_units()


def context_length(model_path: str | Path, tokenizer: Any = None) -> int:
    """The student's context window in tokens (its config's max_position_embeddings)."""
    config = Path(model_path) / "config.json"
    if config.is_file():
        length = json.loads(config.read_text()).get("max_position_embeddings")
        if isinstance(length, int) and length > 0:
            return length
    length = getattr(tokenizer, "model_max_length", None)
    return int(length) if isinstance(length, int) and 0 < length < 1_000_000 else 2048


def prepare_data(
    env: Environment | None, trajectories: list[Trajectory], tokenizer: Any, config: TrainConfig, context: int = 2048,
) -> tuple[list[SFTExample], FilterReport, int]:
    """Filter, cap and tokenise: (examples, filter report, trajectories dropped as too long). Examples are at most
    `filters.max_tokens` long, or `context` (the student's context length) when that is None."""
    report = filter_trajectories(trajectories, config.filters)
    if config.max_trajectories and len(report.kept) > config.max_trajectories:
        report.drop(f"beyond max_trajectories={config.max_trajectories}", len(report.kept) - config.max_trajectories)
        report.kept = report.kept[: config.max_trajectories]
    limit = config.filters.max_tokens or context
    examples, too_long, report.windowed = build_examples(env, report.kept, tokenizer, limit,
                                                         config.filters.window_context)
    if too_long:
        report.drop(f"a step longer than {limit} tokens", len(too_long))
        dropped = {id(t) for t in too_long}
        report.kept = [t for t in report.kept if id(t) not in dropped]
    return examples, report, len(too_long)


def build_trainer(
    model_path: str | Path, examples: list[SFTExample], config: TrainConfig, output_dir: Path,
    callbacks: list[Any] | None = None,
) -> Any:
    """A TRL SFTTrainer over pre-tokenised examples (labels = assistant tokens), with LoRA unless lora_r == 0."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    quiet_libraries()
    score_positions(config.head_positions)
    cuda = torch.cuda.is_available()
    if not cuda:
        keep_freed_memory()
    bf16 = use_bf16(config.precision)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    attention = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else "sdpa"
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), dtype=torch.bfloat16 if (cuda and bf16) else torch.float32, attn_implementation=attention
    )
    dataset = Dataset.from_list([{"input_ids": e.input_ids, "assistant_masks": e.assistant_masks} for e in examples])
    args = SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.lr,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.micro_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        gradient_checkpointing=config.gradient_checkpointing,
        bf16=bf16,
        use_cpu=not cuda,
        # One conversation per micro-batch has no padding anyway. Several conversations in one row would attend
        # to each other under sdpa/eager (measured with transformers 5.23; only varlen flash-attention kernels
        # keep them apart), so without flash-attention micro-batches are padded, grouped by length.
        padding_free=config.padding_free and config.micro_batch_size > 1 and attention == "flash_attention_2",
        train_sampling_strategy="group_by_length" if config.micro_batch_size > 1 else "random",
        max_length=None,  # examples are length-capped by the filters, never truncated mid-turn
        shuffle_dataset=True,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # under accelerate: every trained weight takes part in every step
    )
    peft_config = None
    if config.lora_r > 0:
        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.alpha, lora_dropout=config.lora_dropout,
                                 target_modules=config.target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=[*(callbacks or []), log_last_step()])
    if callbacks:  # our progress bar replaces the Trainer's printed log dicts
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def keep_freed_memory() -> None:
    """Stop glibc from returning freed memory to the OS after every step (Linux, best effort).

    CPU training allocates and frees the same large activations each step; with glibc's defaults every
    one of them is a fresh mmap and page faults (a third of the run in kernel time, measured). Keeping
    the heap instead made training about 1.3x faster here."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl, ...): nothing to tune
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 32 * 1024 * 1024)  # glibc's maximum
    mallopt(m_trim_threshold, 64 * 1024**3)
    mallopt(m_top_pad, 1024**3)


def quiet_libraries() -> None:
    """Library progress bars and deprecation chatter would garble agentkd's own progress display."""
    import warnings

    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|transformers|peft|torch)")


def log_last_step() -> Any:
    """Makes the Trainer log the last step too, so the final loss reported is the final step's."""
    from transformers import TrainerCallback

    class _LogLast(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= state.max_steps:
                control.should_log = True

    return _LogLast()


def progress_callback(on_progress: ProgressFn) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.last: dict[str, float] = {}

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            on_progress(state.global_step, state.max_steps, self.last)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            self.last = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            on_progress(state.global_step, state.max_steps, self.last)

    return _Progress()


def train_student(
    run: str | Path,
    env: Environment | None,
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
    on_data: Callable[[FilterReport, list[SFTExample]], None] | None = None,
    dataset: str | Path | None = None,
) -> TrainResult:
    """Train RUN's student from RUN/trajectories.jsonl (or from the `train` split of an `agentkd export` at
    `dataset`: trajectories, or SFT conversations) and write RUN/student/. `env` None: a gateway run, whose tool-call
    episodes carry their own tool definitions.

    Under `accelerate launch` (several processes, one per GPU, or CPU processes over gloo) every process builds
    the same data (deterministically, from the same files) and trains its shard; only the main process checks
    and writes the run folder, checkpoints, the trained student and its log, and the others wait for it."""
    from transformers import AutoTokenizer

    from agentkd.models.hf.local import resolve_local_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    layout = RunLayout(run)
    out = layout.student_dir
    checkpoints = layout.student_checkpoints
    state = distributed_state()
    with state.main_process_first():  # the main process checks and prepares the folder before the others read it
        if state.is_main_process:
            if dataset is not None:
                from agentkd.train.dataset_export import adopt_dataset

                adopt_dataset(run, dataset)
            if out.exists() and not resume:
                if not overwrite:
                    raise TrainingError(f"{out} already exists; pass --resume to continue its training or "
                                        "--overwrite to start again (which deletes it)")
                shutil.rmtree(out)
            if resume and not layout.has_checkpoint():
                raise TrainingError(f"nothing to resume: {checkpoints} holds no checkpoint; run without --resume")
        model_path = resolve_local_model(config.student)
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        examples, report, too_long = load_examples(run, env, tokenizer, config, context_length(model_path, tokenizer),
                                                   dataset)
    if on_data:
        on_data(report, examples)
    if not examples:
        raise TrainingError(f"no trajectory in {dataset or run} passed the filters ({report.summary()}); collect "
                            "more, or loosen the filters in a --config file")
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        layout.student_config.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        _write_data_files(layout, report, examples, dataset)

    start_step = layout.checkpoint_steps()[-1] if resume else 0
    callbacks = [progress_callback(on_progress)] if on_progress else []
    trainer = build_trainer(model_path, examples, config, checkpoints, callbacks)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - started
    train_tokens = _tokens_trained(trainer, examples, config, start_step, state.num_processes)
    adapter_dir = gguf = gguf_error = None
    if trainer.is_world_process_zero():
        adapter_dir = _save(trainer, tokenizer, layout, config)
        write_log(layout.train_log, trainer.state.log_history, train_tokens, seconds,
                  processes=state.num_processes)
        gguf, gguf_error = export_gguf_safely(layout)
    state.wait_for_everyone()  # no process reports success before the student is on disk
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return TrainResult(student_dir=out, merged_dir=layout.student_merged, adapter_dir=adapter_dir, filters=report,
                       examples=len(examples), too_long=too_long, train_tokens=train_tokens,
                       seconds=seconds, final_loss=losses[-1] if losses else output.training_loss, gguf=gguf,
                       gguf_error=gguf_error, processes=state.num_processes, rank=state.process_index)


def distributed_state() -> Any:
    """accelerate's view of this process: one process normally; under `accelerate launch` (or torchrun) it joins
    the process group (nccl on GPUs, gloo on CPUs), as the Trainer would a moment later."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def load_examples(
    run: str | Path, env: Environment | None, tokenizer: Any, config: TrainConfig, context: int,
    dataset: str | Path | None = None,
) -> tuple[list[SFTExample], FilterReport, int]:
    """(examples, filter report, trajectories too long) from RUN/trajectories.jsonl, or from an export's train split:
    a trajectories export goes through the filters like a run; an sft export holds already filtered conversations."""
    if dataset is None:
        return prepare_data(env, list(RunFolder(run).iter_trajectories()), tokenizer, config, context)
    from agentkd.train.dataset_export import exported_conversations, exported_trajectories, read_meta
    from agentkd.train.sft_data import examples_from_conversations

    if read_meta(dataset).what == "trajectories":
        return prepare_data(env, exported_trajectories(dataset), tokenizer, config, context)
    conversations = exported_conversations(dataset)
    if config.max_trajectories:
        conversations = conversations[: config.max_trajectories]
    limit = config.filters.max_tokens or context
    examples, too_long, windowed = examples_from_conversations(conversations, tokenizer, limit,
                                                               config.filters.window_context)
    report = FilterReport(seen=len(conversations), windowed=windowed, conversations=len(conversations) - len(too_long))
    if too_long:
        report.drop(f"a step longer than {limit} tokens", len(too_long))
    return examples, report, len(too_long)


def _tokens_trained(trainer: Any, examples: list[SFTExample], config: TrainConfig, start_step: int,
                    processes: int = 1) -> int:
    """Tokens run through the model by this call, by all processes (steps since `start_step`, at the data's mean
    tokens per step; a step takes batch_size conversations on each process)."""
    per_epoch = sum(len(e.input_ids) for e in examples)
    steps_per_epoch = max(math.ceil(len(examples) / (config.batch_size * processes)), 1)
    return int(per_epoch * (trainer.state.global_step - start_step) / steps_per_epoch)


def _save(trainer: Any, tokenizer: Any, layout: RunLayout, config: TrainConfig) -> Path | None:
    """The adapter (LoRA only) and merged, directly loadable weights; then the marker file."""
    model = trainer.model
    adapter_dir = None
    if config.lora_r > 0:
        adapter_dir = layout.student_adapter
        model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        model = model.merge_and_unload()
    merged = layout.student_merged
    tmp = merged.with_name(merged.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / STUDENT_MARKER).write_text(json.dumps({"prompt": "student", "base": config.student}, indent=2))
    shutil.rmtree(merged, ignore_errors=True)
    os.replace(tmp, merged)
    return adapter_dir


def export_gguf_safely(layout: RunLayout, student: str = TRAINED) -> tuple[Path | None, str | None]:
    """The GGUF of the merged weights just saved (`trained` or `trained-dpo`): (path, None), or (None, why) on
    failure. Never raises: the trained weights are on disk already and must not be lost to an export problem."""
    from agentkd.train.export import export_student

    gguf = layout.gguf_of(student)
    gguf.unlink(missing_ok=True)  # never leave the GGUF of an earlier student beside new weights
    try:
        return export_student(layout.root, student=student).path, None
    except Exception as exc:  # noqa: BLE001 - reported, and retried with `agentkd export`
        reason = f"{type(exc).__name__}: {exc}"
        retry = f"agentkd export --run {layout.root}" + (" --student trained-dpo" if student == TRAINED_DPO else "")
        logger.warning("GGUF export failed (%s); the trained weights are saved in %s; retry with `%s`",
                       reason, layout.trained_model(student), retry)
        return None, reason


def _write_data_files(layout: RunLayout, report: FilterReport, examples: list[SFTExample],
                      dataset: str | Path | None = None) -> None:
    summary = {**({"dataset": str(Path(dataset).resolve())} if dataset is not None else {}),"summary": report.summary(), "seen": report.seen, "kept": len(report.kept), "examples": len(examples),
               "failed": len(report.failed), "dropped": report.dropped,
               "tokens": sum(len(e.input_ids) for e in examples),
               "trained_tokens": sum(e.trained_tokens for e in examples)}
    layout.student_data.write_text(json.dumps(summary, indent=2))
    if dataset is not None:
        return  # the failed episodes of an export's trajectories belong to its source run
    # Kept apart for later preference training, outside student/ so that replacing a student keeps them.
    with open(layout.failed_episodes, "w") as handle:
        for traj in report.failed:
            handle.write(traj.model_dump_json() + "\n")


def write_log(file: Path, history: list[dict[str, Any]], tokens: int, seconds: float, processes: int = 1) -> None:
    with open(file, "w") as handle:
        for entry in history:
            handle.write(json.dumps(entry) + "\n")
        handle.write(json.dumps({"train_tokens": tokens, "train_seconds": round(seconds, 2),
                                 "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
                                 "processes": processes}) + "\n")
