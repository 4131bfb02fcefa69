"""The memory prediction (`motionsep inspect --frames --size`): what it traces is what autograd keeps, and the
plan's switches change the parts they should."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from motionsep.cli import main
from motionsep.families import MODELSCOPE, WAN
from motionsep.families.wan_i2v import IMAGE_ENCODER_PARAMETERS
from motionsep.memory import MemoryPlan, as_trained, predict_training_memory, traced_activations
from motionsep.testing import tiny_modelscope_unet, tiny_wan_pipeline


def _kept_on_the_cpu(denoiser, family, trainable: list[str], latent_shape, text_shape) -> int:
    """Bytes autograd keeps for one real training forward on the CPU, counted once per storage."""
    denoiser = copy.deepcopy(denoiser).requires_grad_(False)
    for name in trainable:
        denoiser.get_submodule(name).weight.requires_grad_(True)
    parameters = {p.untyped_storage().data_ptr() for p in denoiser.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor):
        key = tensor.untyped_storage().data_ptr()
        if not isinstance(tensor, torch.nn.Parameter) and key not in parameters:
            kept[key] = tensor.untyped_storage().nbytes()
        return tensor

    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(latent_shape, generator=g), torch.randn(text_shape, generator=g)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        family.predict(denoiser, latents, torch.tensor([500.0]), text)
    return sum(kept.values())


@pytest.mark.parametrize(
    "family, denoiser, trainable, latent_shape, text_shape",
    [
        (WAN, lambda: tiny_wan_pipeline().transformer, ["blocks.0.attn1.to_q"], (1, 16, 3, 16, 16), (1, 12, 32)),
        (
            MODELSCOPE,
            tiny_modelscope_unet,
            ["down_blocks.0.temp_attentions.0.transformer_blocks.0.attn1.to_q"],
            (1, 4, 4, 8, 8),
            (1, 77, 32),
        ),
    ],
    ids=["wan", "modelscope"],
)
def test_the_meta_trace_counts_what_autograd_keeps_in_a_real_forward(
    family, denoiser, trainable, latent_shape, text_shape
):
    model = denoiser()
    meta = copy.deepcopy(model)
    as_trained(meta, MemoryPlan("fp32"), trainable)
    traced, per_unit, inputs = traced_activations(meta, family, latent_shape, text_shape)
    assert traced == _kept_on_the_cpu(model, family, trainable, latent_shape, text_shape)
    assert set(per_unit) == set(family.checkpoint_units(model)) and all(inputs[u] > 0 for u in inputs)


def test_each_switch_of_the_plan_changes_its_own_part():
    def predict(**plan):
        denoiser = copy.deepcopy(tiny_wan_pipeline().transformer)
        names = [f"blocks.{i}.attn1.{p}" for i in range(2) for p in ("to_q", "to_k")]
        return predict_training_memory(denoiser, WAN, MemoryPlan(**plan), names, 1000, (1, 16, 3, 16, 16), (1, 12, 32))

    plain, fp8, checkpointed = predict(), predict(fp8_base=True), predict(gradient_checkpointing=True)
    assert plain["trainable_state"] == 16_000  # fp32 weight, gradient and two AdamW moments a parameter
    assert fp8["weights"] < plain["weights"] and fp8["activations"] == plain["activations"]
    assert checkpointed["activations"] < plain["activations"] and checkpointed["weights"] == plain["weights"]
    assert plain["peak"] == max(plain["training"], plain["caching"])
    text = predict(fp8_text_encoder=True)["caching"]
    kept = WAN.text_encoder_unscaled_parameters
    rest = WAN.text_encoder_parameters - kept
    assert (plain["caching"], text) == (2 * (kept + rest), 2 * kept + rest)  # bf16; float8 but embedding and `wo`


def test_inspect_predicts_wan_at_real_size_and_says_what_is_missing(capsys):
    args = ["inspect", "--model", "wan-1.3b-config", "--frames", "81", "--size", "480", "832"]
    assert main([*args, "--fp8-base", "--gradient-checkpointing", "--fp8-text-encoder", "--json"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    assert memory["latent_shape"] == [1, 16, 21, 60, 104]
    assert memory["peak"] == max(memory["training"], memory["caching"])
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "predicted peak" in printed and "caching   11.4 GB: the text encoder" in printed
    # Wan 2.1 I2V caches beside its CLIP image encoder; Wan 2.2 I2V has none
    caching = {}
    for model in ("wan-i2v-14b-config", "wan2.2-i2v-a14b-config"):
        assert main(["inspect", "--model", model, "--frames", "33", "--size", "480", "832", "--json"]) == 0
        caching[model] = json.loads(capsys.readouterr().out)["memory"]["caching"]
    assert caching["wan-i2v-14b-config"] - caching["wan2.2-i2v-a14b-config"] == 2 * IMAGE_ENCODER_PARAMETERS  # bf16
    assert main(["inspect", "--model", "wan-i2v-14b-config", "--frames", "33", "--size", "480", "832"]) == 0
    assert "the text encoder and the image encoder" in capsys.readouterr().out
    assert main(["inspect", "--model", "wan-1.3b-config", "--frames", "81"]) == 2
    assert "--frames and --size go together" in capsys.readouterr().err
