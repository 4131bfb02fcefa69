"""Every preset trains exactly the layers it names, and nothing else."""

from __future__ import annotations

import re

import pytest

from motionsep.adapters import MOTION, SPATIAL, lora_layers
from motionsep.errors import MotionsepError
from motionsep.inspection import inspect_model
from motionsep.methods import resolve_method
from motionsep.train import prepare

ZEROSCOPE = "zeroscope-config"  # the packaged ModelScope/ZeroScope UNet config

# Written out by hand from the paper / release / MotionDirector, independently of methods.py.
TEMPORAL = {
    "modelscope": r"(transformer_in|(down_blocks|up_blocks)\.\d+\.temp_attentions\.\d+"
    r"|mid_block\.temp_attentions\.\d+)",
    "animatediff": r"((down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.\d+",
}
SPATIAL_T = r"((down_blocks|up_blocks)\.\d+|mid_block)\.attentions\.\d+"
ATTN = {"q": "to_q", "k": "to_k", "v": "to_v", "out": r"to_out\.0"}
ALL = {"q", "k", "v", "out", "ff"}
EXPECTED = {  # temporal, spatial path, spatial layers inside the motion LoRA
    "tap": ({"q", "k"}, set(), set()),
    "tap-official": ({"k", "out"}, ALL, set()),
    "motiondirector": (ALL, ALL, set()),
    "temporal-lora": ({"q", "k", "v", "out"}, set(), set()),
    "full-lora": (ALL, set(), ALL),
}


def expected_modules(names, family, temporal, spatial, joint=frozenset()):
    patterns = []
    for targets, prefix, attns in (
        (temporal, TEMPORAL[family], "attn[12]"),
        (spatial, SPATIAL_T, "attn1"),
        (joint, SPATIAL_T, "attn[12]"),
    ):
        for t in targets:
            if t == "ff":
                patterns.append(rf"{prefix}\.transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)")
            else:
                patterns.append(rf"{prefix}\.transformer_blocks\.\d+\.{attns}\.{ATTN[t]}")
    return {n for n in names if any(re.fullmatch(p, n) for p in patterns)}


@pytest.mark.parametrize("family", ["modelscope", "animatediff"])
@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_preset_trains_exactly_its_layers(make_config, family, method):
    state = prepare(make_config(family, method))
    unet = state.denoiser
    base_names = [n for n, m in unet.named_modules() if hasattr(m, "base_layer")]
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert all(".lora_A." in n or ".lora_B." in n for n in trainable), "a base weight is trainable"
    trained_modules = {re.sub(r"\.lora_[AB]\..*$", "", n) for n in trainable}
    plain_names = [n for n, _ in unet.named_modules()]
    temporal, spatial, joint = EXPECTED[method]
    want = expected_modules(plain_names, family, temporal, spatial, joint)
    assert want, "the expected set is empty: the test patterns are wrong"
    assert trained_modules == want
    assert set(base_names) == want
    # every LoRA layer is active (peft would leave only the newest adapter active)
    for layer in lora_layers(unet):
        assert set(layer.active_adapters) >= set(layer.lora_A.keys())
    assert (SPATIAL in state.lora_configs) == bool(spatial)
    assert len(state.targets["temporal"]) == len(lora_layers(unet, MOTION))


def test_target_override_and_bad_names():
    assert resolve_method("tap", ["k", "q"]).temporal_targets == ("q", "k")
    with pytest.raises(MotionsepError, match="did you mean 'tap'"):
        resolve_method("tapp")
    with pytest.raises(MotionsepError, match="did you mean 'out'"):
        resolve_method("tap", ["q", "ot"])


def test_inspect_zeroscope_counts_match_reference():
    tap = inspect_model(ZEROSCOPE, "tap")
    assert tap["denoiser_parameters"] == pytest.approx(1.41e9, rel=0.005)
    assert tap["paths"]["temporal"]["transformers"] == 17
    assert len(tap["paths"]["temporal"]["layers"]) == 68
    assert tap["paths"]["temporal"]["parameters"] == pytest.approx(3.33e6, rel=0.005)
    assert [p["from"] for p in tap["appearance_highway"]["hook_points"]] == [
        "down_blocks.2.attentions.0",
        "down_blocks.2.attentions.1",
    ]
    md = inspect_model(ZEROSCOPE, "motiondirector")
    assert len(md["paths"]["temporal"]["layers"]) == 170
    assert md["paths"]["temporal"]["parameters"] == pytest.approx(12.47e6, rel=0.005)
    assert len(md["paths"]["spatial"]["layers"]) == 96
    assert md["paths"]["spatial"]["parameters"] == pytest.approx(8.79e6, rel=0.005)
    assert len(inspect_model(ZEROSCOPE, "tap", highway_blocks="all")["appearance_highway"]["hook_points"]) == 6
