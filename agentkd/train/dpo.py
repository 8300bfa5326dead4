"""`agentkd train --stage dpo`: preference pairs → TRL DPOTrainer (+ peft LoRA) on the SFT student → RUN/student-dpo/."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from agentkd.codeact.prompts import with_student_prompt
from agentkd.env.environment import Environment
from agentkd.run.layout import STUDENT_MARKER, TRAINED_DPO, RunLayout
from agentkd.tool_calls import message_text
from agentkd.train.config import TrainConfig
from agentkd.train.filters import FilterReport
from agentkd.train.preferences import PreferencePair, build_preferences, write_preferences
from agentkd.train.trainer import (
    ProgressFn,
    TrainingError,
    TrainResult,
    context_length,
    export_gguf_safely,
    keep_freed_memory,
    log_last_step,
    progress_callback,
    quiet_libraries,
    use_bf16,
    write_log,
)


def dpo_rows(env: Environment | None, pairs: list[PreferencePair]) -> list[dict[str, Any]]:
    """Conversational DPO rows in the student's own view: TRL scores the completions only. A CodeAct pair gets the
    environment's short student prompt; a tool-call pair (`agentkd gateway --cascade`) keeps its own conversation and
    carries its tool definitions in `tools` (JSON, as TRL reads them), so the chat template renders them."""
    return [_row(env, p) for p in pairs]


def _row(env: Environment | None, pair: PreferencePair) -> dict[str, Any]:
    tools = pair.provenance.get("tools")
    row: dict[str, Any] = {"chosen": [{"role": "assistant", "content": pair.chosen}],
                           "rejected": [{"role": "assistant", "content": pair.rejected}],
                           "tools": json.dumps(tools) if tools else None}
    if tools:
        row["prompt"] = [_plain(m) for m in pair.prompt]
    elif env is None:
        raise TrainingError(f"preference pair {pair.id} is a CodeAct pair: its prompt needs the environment's student "
                            "prompt, and this run records no environment")
    else:
        row["prompt"] = with_student_prompt(env, pair.prompt)
    return row


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A chat message with the fields every row of a DPO dataset can hold alike (tool-call arguments stay JSON text,
    as chat templates accept them, so rows with other arguments share one schema)."""
    out: dict[str, Any] = {"role": message.get("role"), "content": message_text(message.get("content"))}
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if calls:
        out["tool_calls"] = [{"type": "function", "function": {
            "name": (c.get("function") or {}).get("name"),
            "arguments": (c.get("function") or {}).get("arguments") or "{}"}} for c in calls]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def build_dpo_trainer(base: Path, rows: list[dict[str, Any]], config: TrainConfig, checkpoints: Path,
                      callbacks: list[Any] | None = None) -> Any:
    """TRL's DPOTrainer with a LoRA adapter on the student at `base`; TRL tokenises each row into prompt and
    completion ids and scores the completion (the assistant step) only."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    cuda = torch.cuda.is_available()
    if not cuda:
        keep_freed_memory()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    settings = config.dpo
    args = DPOConfig(
        output_dir=str(checkpoints), num_train_epochs=settings.epochs, max_steps=config.max_steps or -1,
        learning_rate=settings.lr,
        per_device_train_batch_size=1, gradient_accumulation_steps=settings.batch_size, beta=settings.beta,
        loss_type=[settings.loss_type], max_length=config.filters.max_tokens or context_length(base, tokenizer),
        lr_scheduler_type=config.scheduler, warmup_steps=0, bf16=use_bf16(config.precision) and cuda,
        use_cpu=not cuda, seed=config.seed, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True,
        dataloader_num_workers=0,
    )
    peft = LoraConfig(r=max(config.lora_r, 1), lora_alpha=config.alpha or 2, lora_dropout=config.lora_dropout,
                      target_modules=config.target_modules, task_type="CAUSAL_LM")
    return DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                      peft_config=peft, callbacks=callbacks or [])


def train_dpo(
    run: str | Path, env: Environment | None, config: TrainConfig, overwrite: bool = False,
    on_progress: ProgressFn | None = None, on_pairs: Callable[[dict[str, int]], None] | None = None,
) -> TrainResult:
    """Build RUN/preferences.jsonl and train the SFT student on it with DPO; writes RUN/student-dpo/."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainingError("the preference (dpo) stage runs in one process: start it with `agentkd train --stage dpo`, "
                            "not under `accelerate launch` (only the sft stage is multi-process)")
    layout = RunLayout(run)
    base = layout.trained_student()
    out = layout.dpo_dir
    if out.exists():
        if not overwrite:
            raise TrainingError(f"{out} already exists; pass --overwrite to train the preference stage again")
        shutil.rmtree(out)
    pairs, counts = build_preferences(run, include_test=config.dpo.include_test)
    if on_pairs:
        on_pairs(counts)
    if not pairs:
        raise TrainingError(
            f"{run} gives no preference pair ({', '.join(f'{n} {k}' for k, n in counts.items())}); evaluate the "
            f"trained student on the train split first, e.g. `agentkd eval --run {run} --policy cascade --student "
            "trained --split train --n 50` (deferred steps) or `--policy student` (failed episodes)")
    write_preferences(layout.preferences, pairs)
    quiet_libraries()
    callbacks = [log_last_step(), *([progress_callback(on_progress)] if on_progress else [])]
    trainer = build_dpo_trainer(base, dpo_rows(env, pairs), config, out / "checkpoints", callbacks)
    tokenizer = trainer.processing_class
    if on_progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(layout.dpo_merged))
    tokenizer.save_pretrained(str(layout.dpo_merged))
    (layout.dpo_merged / STUDENT_MARKER).write_text(json.dumps({"prompt": "student", "base": str(base),
                                                               "stage": "dpo", "pairs": len(pairs)}, indent=2))
    write_log(layout.dpo_train_log, trainer.state.log_history, 0, seconds)
    gguf, gguf_error = export_gguf_safely(layout, TRAINED_DPO)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    report = FilterReport(seen=counts["found"])
    return TrainResult(student_dir=out, merged_dir=layout.dpo_merged, adapter_dir=adapter, filters=report,
                       examples=len(pairs), too_long=0, train_tokens=0, seconds=seconds,
                       final_loss=losses[-1] if losses else output.training_loss, gguf=gguf, gguf_error=gguf_error)
