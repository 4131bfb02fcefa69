"""Appearance Highway: off is plain diffusers bit for bit; on swaps exactly the selected skips."""

from __future__ import annotations

import pytest
import torch
from diffusers import DiffusionPipeline

from conftest import run_unet, unet_inputs
from motionsep.errors import MotionsepError
from motionsep.highway import AppearanceHighway, HighwaySettings
from motionsep.models import load_pipeline
from motionsep.train import enable_gradient_checkpointing

FAMILIES = ["modelscope", "animatediff"]


def load_unet(pipeline_dirs, family):
    pipe, _ = load_pipeline(pipeline_dirs[family])
    return pipe.unet


@pytest.mark.parametrize("family", FAMILIES)
def test_highway_off_is_bit_identical_to_diffusers(pipeline_dirs, family):
    plain = DiffusionPipeline.from_pretrained(pipeline_dirs[family]).unet  # untouched diffusers
    reference = run_unet(plain, family)
    unet = load_unet(pipeline_dirs, family)
    highway = AppearanceHighway(unet, HighwaySettings(blocks="all", first_skip_from_conv_in=True), enabled=False)
    assert torch.equal(run_unet(unet, family), reference)
    highway.enable()
    assert not torch.allclose(run_unet(unet, family), reference)
    highway.disable()
    assert torch.equal(run_unet(unet, family), reference)
    highway.remove()
    assert torch.equal(run_unet(unet, family), reference)


def record_down_blocks(unet):
    """Hooks recording each down block's (hidden_states, skips) and each spatial transformer's output."""
    seen = {}
    handles = []
    for i, block in enumerate(unet.down_blocks):
        handles.append(block.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(("block", i), out)))
        for j, attn in enumerate(getattr(block, "attentions", [])):
            handles.append(
                attn.register_forward_hook(lambda m, a, out, i=i, j=j: seen.__setitem__(("attn", i, j), out[0]))
            )
    return seen, handles


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("blocks,selected", [("deepest", [1]), ("all", [0, 1]), ([0], [0])])
def test_highway_swaps_only_selected_skips(pipeline_dirs, family, blocks, selected):
    unet = load_unet(pipeline_dirs, family)
    plain, handles = record_down_blocks(unet)
    run_unet(unet, family)
    for h in handles:
        h.remove()
    scale = 1.1
    highway = AppearanceHighway(unet, HighwaySettings(blocks=blocks, scale=scale))
    assert highway.blocks == selected
    routed, _ = record_down_blocks(unet)  # registered after the highway: sees its result
    run_unet(unet, family)
    for i in range(len(unet.down_blocks)):
        hidden0, skips0 = plain[("block", i)]
        hidden1, skips1 = routed[("block", i)]
        assert torch.equal(hidden0, hidden1), "the main path changed"
        for j, (s0, s1) in enumerate(zip(skips0, skips1)):
            is_layer_skip = j < len(getattr(unet.down_blocks[i], "attentions", []) or [])
            if i in selected and is_layer_skip:
                # reference: the spatial transformer's output of the plain run, times beta
                assert torch.equal(s1, plain[("attn", i, j)] * scale)
                assert not torch.allclose(s1, s0)
            else:
                assert torch.equal(s0, s1), f"skip {j} of block {i} changed"


def test_highway_rejects_blocks_without_attention(pipeline_dirs):
    unet = load_unet(pipeline_dirs, "modelscope")
    with pytest.raises(MotionsepError, match="no spatial attention"):
        AppearanceHighway(unet, HighwaySettings(blocks=[2]))


def test_first_skip_from_conv_in(pipeline_dirs):
    unet = load_unet(pipeline_dirs, "modelscope")
    got = {}
    AppearanceHighway(unet, HighwaySettings(blocks="deepest", first_skip_from_conv_in=True))
    # registered after the highway's own hooks, so these see what the highway passes on
    unet.conv_in.register_forward_hook(lambda m, a, out: got.__setitem__("conv_in", out))
    unet.up_blocks[-1].register_forward_pre_hook(
        lambda m, a, kw: got.__setitem__("first_skip", kw["res_hidden_states_tuple"][0]), with_kwargs=True
    )
    run_unet(unet, "modelscope")
    assert torch.equal(got["first_skip"], got["conv_in"])


def test_highway_gradients_survive_gradient_checkpointing(pipeline_dirs):
    grads = []
    for checkpointing in (False, True):
        unet = load_unet(pipeline_dirs, "modelscope")
        AppearanceHighway(unet, HighwaySettings(blocks="all"))
        if checkpointing:
            enable_gradient_checkpointing(unet)
        sample, t, text = unet_inputs(unet, "modelscope")
        unet(sample, t, encoder_hidden_states=text).sample.square().mean().backward()
        grads.append(unet.down_blocks[0].attentions[0].proj_out.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_a_family_without_unet_skips_refuses_the_highway():
    """A DiT (Wan) has no U-Net skips: a one-line error, not a half-attached highway."""
    from motionsep.testing import tiny_wan_pipeline

    transformer = tiny_wan_pipeline().transformer
    with pytest.raises(MotionsepError, match="U-Net skip connections, which the wan family has none of"):
        AppearanceHighway(transformer, HighwaySettings())
    assert all(not m._forward_hooks for m in transformer.modules())
