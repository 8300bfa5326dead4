"""The LM head scores only the trained positions on a CPU, with the same loss and gradients as scoring them all (a
tiny randomly initialised Llama: the real transformers model class, no weights to load)."""

import pytest
import torch
import trl.trainer.utils as trl_utils
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from agentkd.train.config import TrainConfig
from agentkd.train.lm_head import score_positions


def tiny_lora_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(config)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))


def step(model, mode):
    """Loss and LoRA gradients of one step with the head scoring `mode`'s positions."""
    assert score_positions(mode)
    torch.manual_seed(1)
    ids = torch.randint(0, 512, (1, 40))
    labels = torch.where(torch.arange(40) >= 28, ids, -100)  # the last 12 tokens are trained
    model.zero_grad()
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss.item(), grads


def test_the_head_scores_only_trained_positions_with_the_same_loss_and_gradients(monkeypatch):
    model = tiny_lora_model()
    apply = trl_utils._ChunkedLogProbFunction.apply
    scored_all, scored_trained = [], []
    rows = scored_all

    def counting(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting)
    try:
        loss_all, grads_all = step(model, "all")
        rows = scored_trained
        loss_trained, grads_trained = step(model, "trained")
    finally:
        score_positions("all")
    assert scored_all == [39] and scored_trained == [12]  # every shifted position against the trained ones
    assert loss_trained == pytest.approx(loss_all, rel=1e-5)
    assert grads_all.keys() == grads_trained.keys() and grads_all
    for name, grad in grads_all.items():
        torch.testing.assert_close(grads_trained[name], grad, rtol=1e-4, atol=1e-6)


def test_training_scores_trained_positions_by_default():
    assert TrainConfig().head_positions == "trained"
    assert TrainConfig(head_positions="all").head_positions == "all"
