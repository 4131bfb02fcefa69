"""The CogVideoX family (a DiT whose joint attention reads text and video tokens together, v-prediction): presets,
training, LoRA I/O with plain diffusers, generation, inspect on the published configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from conftest import assert_steps_lower_the_loss
from motionsep.adapters import MOTION, SPATIAL, lora_layers
from motionsep.cli import main
from motionsep.config import config_from_dict
from motionsep.errors import MotionsepError
from motionsep.families import COGVIDEOX
from motionsep.generate import SamplingSettings
from motionsep.losses import DenoisingObjective, objective_for
from motionsep.methods import METHODS, lora_targets
from motionsep.testing import COGVIDEOX_TEXT_TOKENS, WAN_FRAMES, WAN_SIZE, tiny_cogvideox_pipeline
from motionsep.train import prepare, train
from motionsep.video import read_video, write_mp4

ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
SELF = {f"transformer_blocks.{b}.attn1.{n}" for b in (0, 1) for n in ATTENTION}
FEED_FORWARD = {f"transformer_blocks.{b}.ff.{n}" for b in (0, 1) for n in ("net.0.proj", "net.2")}
QK = {f"transformer_blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_q", "to_k")}
EXPECTED = {  # (motion LoRA, spatial LoRA) on the 2-block tiny CogVideoX: one joint attention a block, no attn2
    "tap": (QK, set()),
    "full-lora": (SELF | FEED_FORWARD, set()),
    "motiondirector": (SELF | FEED_FORWARD, SELF | FEED_FORWARD),
}
SAMPLING = SamplingSettings(num_frames=WAN_FRAMES, height=WAN_SIZE, width=WAN_SIZE, steps=3, guidance=1.0)


@pytest.fixture(scope="module")
def cog_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("cog-clips")
    video = np.full((12, WAN_SIZE, WAN_SIZE, 3), 30, np.uint8)
    for i in range(12):
        video[i, 10:18, 2 * i : 2 * i + 8] = (220, 60, 40)
    write_mp4(video, root / "square.mp4")
    (root / "square.txt").write_text("a red square moving right\n")
    return root


@pytest.fixture
def cog_config(pipeline_dirs, cog_clips, tmp_path):
    def make(method="tap", **sections):
        data = {
            "model": pipeline_dirs["cogvideox"],
            "method": method,
            "output_dir": str(tmp_path / f"run-{method}"),
            "data": {"path": str(cog_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 3, "checkpoint_every": 0},
            "lora": {"rank": 4, "dropout": 0.0},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        return config_from_dict(data)

    return make


def test_preset_module_lists_on_cogvideox():
    transformer = tiny_cogvideox_pipeline().transformer
    for name, (motion, spatial) in EXPECTED.items():
        targets = lora_targets(transformer, METHODS[name])
        assert set(targets["temporal"]) == motion and len(targets["temporal"]) == len(motion), name
        assert set(targets["spatial"]) == spatial, name


@pytest.mark.parametrize("rotary", [True, False])
def test_predict_is_the_pipelines_own_denoiser_call(rotary):
    """The family's call (latents channels-first) gives what CogVideoXPipeline's call gives (frames-first, with
    the pipeline's own RoPE table for a RoPE model)."""
    pipe = tiny_cogvideox_pipeline(rotary=rotary)
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn(1, 4, 3, 4, 4, generator=g), torch.randn(1, COGVIDEOX_TEXT_TOKENS, 32, generator=g)
    t = torch.tensor([700])
    rope = pipe._prepare_rotary_positional_embeddings(WAN_SIZE, WAN_SIZE, 3, "cpu") if rotary else None
    with torch.no_grad():
        expected = pipe.transformer(
            hidden_states=x.transpose(1, 2), encoder_hidden_states=text, timestep=t, image_rotary_emb=rope
        ).sample
        assert torch.equal(COGVIDEOX.predict(pipe.transformer, x, t, text), expected.transpose(1, 2))


def test_objective_is_the_schedulers_v_prediction():
    pipe = tiny_cogvideox_pipeline()
    objective = objective_for(pipe.scheduler)
    assert isinstance(objective, DenoisingObjective)
    x, noise, t = torch.randn(2, 4, 3, 4, 4), torch.randn(2, 4, 3, 4, 4), torch.tensor([100, 900])
    torch.testing.assert_close(objective.target(x, noise, t), pipe.scheduler.get_velocity(x, noise, t))


@pytest.mark.parametrize("method", ["tap", "full-lora", "motiondirector"])
def test_training_injects_exactly_the_preset_and_steps_lower_the_loss(cog_config, method):
    set_seed(0)
    state = prepare(cog_config(method, train={"spatial_skip_probability": 0.0}))
    motion, spatial = EXPECTED[method]
    assert {n for n, m in state.denoiser.named_modules() if m in lora_layers(state.denoiser, MOTION)} == motion
    assert {n for n, m in state.denoiser.named_modules() if m in lora_layers(state.denoiser, SPATIAL)} == spatial
    trainable = {n for n, p in state.denoiser.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert state.latents.shape[1:] == (4, 3, 4, 4) and state.text.shape[1] == COGVIDEOX_TEXT_TOKENS
    if method == "motiondirector":
        assert state.frame_latents.shape[2] == WAN_FRAMES  # each frame a clip of its own
    assert_steps_lower_the_loss(state, lr=1e-2)


@pytest.fixture(scope="module")
def cog_lora(pipeline_dirs, cog_clips, tmp_path_factory):
    config = config_from_dict(
        {
            "model": pipeline_dirs["cogvideox"],
            "output_dir": str(tmp_path_factory.mktemp("cog-lora") / "tap"),
            "data": {"path": str(cog_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 3, "checkpoint_every": 0, "learning_rate": 0.05},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )
    return train(config, progress=False)


def test_generate_cli_writes_decodable_mp4_and_refuses_bad_frames(pipeline_dirs, cog_lora, tmp_path, capsys):
    out = tmp_path / "videos"
    args = ["generate", "--model", pipeline_dirs["cogvideox"], "--lora", str(cog_lora), "--prompt", "a blue circle"]
    assert main([*args, "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    (mp4,) = out.glob("*.mp4")
    assert read_video(mp4).shape == (WAN_FRAMES, WAN_SIZE, WAN_SIZE, 3)  # its native size, read from its config
    assert main([*args, "--frames", "8", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "1 + 4k frames" in capsys.readouterr().err


def test_probe_and_heads_say_cogvideox_has_no_pathway_yet(cog_config, capsys):
    with pytest.raises(MotionsepError, match="cogvideox family does not declare"):
        prepare(cog_config("tap-heads"))
    assert main(["probe", "--model", "cogvideox-2b-config"]) == 2
    assert "no temporal pathway" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "parameters"), [("cogvideox-2b-config", 1.69e9), ("cogvideox-5b-config", 5.57e9)])
def test_inspect_reads_the_published_configs(name, parameters, capsys):
    assert main(["inspect", "--model", name, "--method", "tap", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "cogvideox"
    assert report["denoiser_parameters"] == pytest.approx(parameters, rel=0.02)
    blocks = 30 if "2b" in name else 42
    assert len(report["paths"]["temporal"]["layers"]) == 2 * blocks  # to_q and to_k of every block's joint attention
