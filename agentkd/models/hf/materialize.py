"""Trainable Hugging Face folders made once from the GGUF files agentkd knows by alias.

transformers reads a GGUF (`gguf_file=`) by dequantising its weights; a model loaded that way is flagged as
quantized and the Trainer refuses it. `materialize` loads the GGUF once, clears that flag and saves a plain
fp32 folder in the agentkd cache, with the GGUF's tokenizer and chat template, and a record of the file it
came from (`agentkd_source.json`, read by `recorded_gguf`: the GGUF export of a student trained on it takes its
tokenizer and metadata from there). The weights are the 4-bit file's, dequantised: not the original bf16 release.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from agentkd.errors import ModelError
from agentkd.models.distribution.catalog import cache_dir, locate

SOURCE_RECORD = "agentkd_source.json"
"""In a materialised folder: the alias and GGUF file its weights were dequantised from."""


@dataclass(frozen=True)
class TrainableModel:
    """A local alias that trains: the GGUF it is made from and the folder it is materialised into."""

    alias: str
    gguf_alias: str
    """Its GGUF in agentkd.models.distribution.catalog (packaged, or installed with `agentkd models install`)."""
    folder: str
    """Folder name under <agentkd cache>/models."""
    end_tokens: tuple[str, ...] = ()
    """Tokens that end a reply (the generation config's eos ids), first the chat template's end of turn."""


TRAINABLE: dict[str, TrainableModel] = {m.alias: m for m in (
    TrainableModel("smollm2-135m", "smollm2-135m", "smollm2-135m-instruct"),
    TrainableModel("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct-hf",
                   ("<|im_end|>", "<|endoftext|>")),
    TrainableModel("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct-hf",
                   ("<|im_end|>", "<|endoftext|>")),
)}
_SYNONYMS = {"smollm2-135m-instruct": "smollm2-135m", "qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b",
             "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b"}


def trainable(name: str) -> TrainableModel | None:
    """The trainable alias `name` (case-insensitive, `-instruct` allowed), or None."""
    key = name.lower()
    return TRAINABLE.get(_SYNONYMS.get(key, key))


def materialized_dir(model: TrainableModel) -> Path:
    """Where `model`'s folder lives (or will): <agentkd cache>/models/<folder>."""
    return cache_dir() / "models" / model.folder


def materialize(name: str) -> Path:
    """The trainable folder of alias `name`, made from its GGUF on first use (a minute or two for the Qwen models)."""
    model = trainable(name)
    if model is None:
        raise ModelError(f"{name!r} is not a trainable alias ({', '.join(TRAINABLE)})")
    target = materialized_dir(model)
    if (target / "config.json").is_file():
        return target
    return materialize_gguf(locate(model.gguf_alias), target, model.end_tokens, model.gguf_alias)


def materialize_gguf(gguf: Path, target: Path, end_tokens: tuple[str, ...] = (), alias: str | None = None) -> Path:
    """Dequantise the GGUF file `gguf` into the Hugging Face folder `target` (written whole, then renamed)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # GGUF-loaded models are flagged as quantized and refused by the Trainer; we hold plain fp32 weights.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    ends = [tokenizer.convert_tokens_to_ids(t) for t in end_tokens]
    if ends:
        if None in ends or tokenizer.unk_token_id in ends:
            raise ModelError(f"{gguf.name} lacks one of the end tokens {end_tokens}")
        model.generation_config.eos_token_id = ends
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_RECORD).write_text(json.dumps({"alias": alias, "gguf": str(gguf),
                                                 "weights": "dequantised from the GGUF file"}, indent=2))
    try:
        tmp.rename(target)  # atomic: a concurrent materialisation leaves one complete folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def recorded_gguf(folder: str | Path) -> Path | None:
    """The GGUF a materialised folder was made from (its alias's verified file when it names one), or None for a
    folder without a record."""
    record = Path(folder) / SOURCE_RECORD
    if not record.is_file():
        return None
    source = json.loads(record.read_text())
    return locate(source["alias"]) if source.get("alias") else Path(source["gguf"])
