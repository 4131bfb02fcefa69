"""The Wan family (a DiT trained by flow matching): presets, training, PLI, LoRA I/O, generation, probe."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from accelerate.utils import set_seed

from conftest import assert_steps_lower_the_loss, plain_wan_video, record_pli_calls
from motionsep.adapters import MOTION, SPATIAL, lora_layers
from motionsep.cli import main
from motionsep.config import config_from_dict
from motionsep.errors import MotionsepError
from motionsep.families import WAN
from motionsep.generate import MotionPipeline, SamplingSettings
from motionsep.losses import FlowMatchingObjective, objective_for
from motionsep.methods import METHODS, lora_targets
from motionsep.probe import pathways_off
from motionsep.testing import WAN_FRAMES, WAN_SIZE, tiny_wan22_ti2v_pipeline, tiny_wan_pipeline
from motionsep.train import prepare, sample_batch, step_losses, train
from motionsep.video import read_video


def _block_layers(block: int, attention: str, names=("to_q", "to_k", "to_v", "to_out.0")) -> set[str]:
    return {f"blocks.{block}.{attention}.{name}" for name in names}


FFN = ("ffn.net.0.proj", "ffn.net.2")
SELF = set().union(*(_block_layers(b, "attn1") for b in (0, 1)))
CROSS = set().union(*(_block_layers(b, "attn2") for b in (0, 1)))
FEED_FORWARD = {f"blocks.{b}.{layer}" for b in (0, 1) for layer in FFN}
EXPECTED = {  # (motion LoRA, spatial LoRA) of every preset on the 2-block tiny Wan
    "tap": ({f"blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_q", "to_k")}, set()),
    "temporal-lora": (SELF, set()),
    "full-lora": (SELF | CROSS | FEED_FORWARD, set()),
    "motiondirector": (SELF | FEED_FORWARD, SELF | FEED_FORWARD),
    "tap-official": ({f"blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_k", "to_out.0")}, SELF | FEED_FORWARD),
    # tap's layers; the heads it may change within them are chosen at training (test_tap_heads_...)
    "tap-heads": ({f"blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_q", "to_k")}, set()),
    # tap's LoRA and, outside it, per-frame query and key offsets (test_tap_offsets_...)
    "tap-offsets": ({f"blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_q", "to_k")}, set()),
    "det": (set(), set()),  # no LoRA: side branches beside the attentions (test_det_...)
}


@pytest.fixture
def wan_config(pipeline_dirs, wan_clips, tmp_path):
    def make(method="tap", **sections):
        data = {
            "model": pipeline_dirs["wan"],
            "method": method,
            "output_dir": str(tmp_path / f"run-{method}"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 3, "checkpoint_every": 0},
            "lora": {"rank": 4, "dropout": 0.0},
        }
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        return config_from_dict(data)

    return make


def test_preset_module_lists_on_a_dit():
    transformer = tiny_wan_pipeline().transformer
    assert set(EXPECTED) == set(METHODS)
    for name, (motion, spatial) in EXPECTED.items():
        targets = lora_targets(transformer, METHODS[name])
        assert set(targets["temporal"]) == motion and len(targets["temporal"]) == len(motion), name
        assert set(targets["spatial"]) == spatial, name


@pytest.mark.parametrize("method", ["tap", "motiondirector"])
def test_training_injects_exactly_the_preset_and_trains_only_lora(wan_config, method):
    state = prepare(wan_config(method))
    motion, spatial = EXPECTED[method]
    names = {n for n, m in state.denoiser.named_modules() if m in lora_layers(state.denoiser, MOTION)}
    assert names == motion
    assert {n for n, m in state.denoiser.named_modules() if m in lora_layers(state.denoiser, SPATIAL)} == spatial
    trainable = {n for n, p in state.denoiser.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)


def test_flow_matching_objective_matches_the_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    objective = objective_for(tiny_wan_pipeline().scheduler)
    assert isinstance(objective, FlowMatchingObjective) and objective.shift == 3.0
    # Wan's shipped sampler: UniPC with flow sigmas and flow_shift
    unipc = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    assert objective_for(unipc).shift == 5.0
    t = objective.draw_timesteps(64, torch.Generator().manual_seed(0))
    assert set(t.tolist()) <= set(objective.table.timesteps.tolist())
    x, noise = torch.randn(2, 16, 3, 4, 4), torch.randn(2, 16, 3, 4, 4)
    reference = FlowMatchEulerDiscreteScheduler(shift=3.0)
    for step in t[:2]:
        expected = reference.scale_noise(x, step.reshape(1), noise)  # (1 - sigma) x + sigma noise
        torch.testing.assert_close(objective.noisy(x, noise, step.repeat(2)), expected)
    assert torch.equal(objective.target(x, noise, t[:2]), noise - x)


@pytest.mark.parametrize("method", ["tap", "motiondirector"])
def test_steps_lower_the_loss_on_a_fixed_batch(wan_config, method):
    set_seed(0)
    state = prepare(wan_config(method, train={"spatial_skip_probability": 0.0}))
    assert state.latents.shape[2] == 3  # 9 frames: 1 + 2 x 4, three latent frames
    if method == "motiondirector":
        assert state.frame_latents.shape[2] == WAN_FRAMES  # the spatial path's one-frame clips
    assert_steps_lower_the_loss(state, lr=1e-2)


def test_resume_ends_with_the_uninterrupted_lora(wan_config, tmp_path):
    from safetensors.torch import load_file

    sections = {"lora": {"rank": 4, "dropout": 0.1}}
    train(
        wan_config(
            "motiondirector", train={"steps": 4, "checkpoint_every": 2}, output_dir=str(tmp_path / "whole"), **sections
        ),
        progress=False,
    )
    part = wan_config(
        "motiondirector", train={"steps": 3, "checkpoint_every": 2}, output_dir=str(tmp_path / "part"), **sections
    )
    train(part, progress=False)
    resumed = wan_config(
        "motiondirector", train={"steps": 4, "checkpoint_every": 2}, output_dir=str(tmp_path / "part"), **sections
    )
    train(resumed, progress=False, resume=True)
    for name in ("pytorch_lora_weights.safetensors", "spatial/pytorch_lora_weights.safetensors"):
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "part" / name)
        assert a.keys() == b.keys() and all(k.startswith("transformer.") for k in a)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    rows = list(csv.DictReader((tmp_path / "part" / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]


@pytest.fixture(scope="module")
def wan_lora(pipeline_dirs, wan_clips, tmp_path_factory):
    config = config_from_dict(
        {
            "model": pipeline_dirs["wan"],
            "method": "tap",
            "output_dir": str(tmp_path_factory.mktemp("wan-lora") / "tap"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 3, "checkpoint_every": 0, "learning_rate": 0.05, "loss": "standard"},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )
    return train(config, progress=False)


def plain_diffusers_video(model: str, lora, prompt: str, into_low_noise_expert: bool = False) -> np.ndarray:
    """The video plain diffusers makes with the LoRA (WanPipeline.load_lora_weights), as SAMPLING, seed 0."""
    from diffusers import WanPipeline

    plain = WanPipeline.from_pretrained(model)
    plain.load_lora_weights(str(lora), **({"load_into_transformer_2": True} if into_low_noise_expert else {}))
    return plain_wan_video(plain, prompt)


SAMPLING = SamplingSettings(num_frames=WAN_FRAMES, height=WAN_SIZE, width=WAN_SIZE, steps=4, guidance=1.0)


def test_pli_on_flow_matching_switches_by_timestep_without_extra_calls(pipeline_dirs, wan_lora):
    settings = SamplingSettings(steps=4, guidance=3.0)  # classifier-free guidance: two calls a step in WanPipeline
    plain = MotionPipeline.from_pretrained(pipeline_dirs["wan"], lora=str(wan_lora))
    calls = []
    plain.pipe.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    with_lora = plain("a red square", 0, settings)
    phased = MotionPipeline.from_pretrained(pipeline_dirs["wan"], lora=str(wan_lora), pli_tau=500)
    switched = record_pli_calls(phased)
    mixed = phased("a red square", 0, settings)
    assert len(switched) == len(calls) == 8  # PLI adds no transformer evaluation
    assert [on for _, on in switched] == [t > 500 for t, _ in switched]
    assert {on for _, on in switched} == {True, False}
    assert not np.array_equal(mixed, with_lora)


def test_generate_cli_writes_decodable_mp4(pipeline_dirs, wan_lora, tmp_path, capsys):
    out = tmp_path / "videos"
    args = ["generate", "--model", pipeline_dirs["wan"], "--lora", str(wan_lora), "--prompt", "a blue circle"]
    args += ["--steps", "3", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    (mp4,) = out.glob("*.mp4")
    assert read_video(mp4).shape == (WAN_FRAMES, WAN_SIZE, WAN_SIZE, 3)
    assert (out / "contact_sheet.png").is_file()
    assert (
        main(
            [
                "generate",
                "--model",
                pipeline_dirs["wan"],
                "--prompt",
                "x",
                "--frames",
                "8",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "1 + 4k frames" in capsys.readouterr().err


def test_bad_wan_input_gets_one_line(pipeline_dirs, wan_clips, tmp_path, capsys):
    def run(**extra):
        data = {
            "model": pipeline_dirs["wan"],
            "output_dir": str(tmp_path / "out"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 1},
        }
        for key, value in extra.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        code = main(["train", str(path), "--no-progress", "--overwrite"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1, err
        return err

    assert "Appearance Highway" in run(appearance_highway={"enabled": True})
    assert "1 + 4k frames" in run(data={"frames": 8}) and "set data.frames to 9" in run(data={"frames": 8})
    assert "this model has one denoiser: set expert to high" in run(expert="low")
    assert "this model has one denoiser: leave expert at high" in run(expert="both")
    assert "expert 'all' is unknown" in run(expert="all")


def test_valid_frame_counts_follow_the_vaes_own_temporal_factor():
    """Wan's VAE is 4x in time (1 + 4k frames); the toy-wan VAE 2x (1 + 2k): the rule is the VAE's, not Wan's."""
    from types import SimpleNamespace

    from motionsep.families import WAN

    two, four = SimpleNamespace(vae_scale_factor_temporal=2), SimpleNamespace(vae_scale_factor_temporal=4)
    assert [WAN.valid_frames(two, n) for n in (7, 8, 9)] == [7, 7, 9]
    assert [WAN.valid_frames(four, n) for n in (7, 8, 9)] == [5, 5, 9]
    WAN.check_frames(two, 7)
    with pytest.raises(MotionsepError, match=r"1 \+ 4k frames \(5, 9, 13, 17, ...\); pass --frames 9"):
        WAN.check_frames(four, 8)


@pytest.mark.parametrize("expert", ["high", "low"])
def test_wan22_trains_one_expert_over_its_timesteps_and_plain_diffusers_loads_it_there(wan_clips, tmp_path, expert):
    import copy

    from diffusers import WanPipeline
    from safetensors import safe_open

    from motionsep.adapters import read_lora_record
    from motionsep.export import export_lora
    from motionsep.models import expert_boundary

    pipe = tiny_wan_pipeline()
    both = WanPipeline(**pipe.components | {"transformer_2": copy.deepcopy(pipe.transformer)}, boundary_ratio=0.875)
    both.save_pretrained(str(tmp_path / "wan22"))
    assert expert_boundary(str(tmp_path / "wan22")) == 0.875
    config = config_from_dict(
        {
            "model": str(tmp_path / "wan22"),
            "method": "tap",
            "expert": expert,
            "output_dir": str(tmp_path / "lora"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 2, "checkpoint_every": 0, "learning_rate": 1e-2},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )
    state = prepare(config)
    drawn = state.objective.draw_timesteps(512, torch.Generator().manual_seed(0))
    if expert == "high":  # WanPipeline runs `transformer` for t >= 875, `transformer_2` below
        assert drawn.min() >= 875 and drawn.max() <= 1000
    else:
        assert drawn.min() >= 0 and drawn.max() < 875
    names = ("transformer", "transformer_2") if expert == "high" else ("transformer_2", "transformer")
    assert lora_layers(getattr(state.pipe, names[0])) and not lora_layers(getattr(state.pipe, names[1]))
    lora = train(config, progress=False)
    assert read_lora_record(lora).expert == expert
    ours = MotionPipeline.from_pretrained(str(tmp_path / "wan22"), lora=str(lora))
    assert lora_layers(getattr(ours.pipe, names[0])) and not lora_layers(getattr(ours.pipe, names[1]))
    video = ours("a red square moving right", 0, SAMPLING)
    plain = plain_diffusers_video(str(tmp_path / "wan22"), lora, "a red square moving right", expert == "low")
    assert np.array_equal(plain, video)
    # ComfyUI: the same layout for both experts, the file named for the model node it goes on
    out = export_lora(lora, tmp_path / "motion.safetensors")
    assert out.name == f"motion_{expert}_noise.safetensors"
    with safe_open(str(out), "pt") as f:
        assert f.metadata()["expert"] == f"{expert}_noise"
    other = "low" if expert == "high" else "high"
    with pytest.raises(MotionsepError, match=f"names the other expert: this LoRA belongs on the {expert}_noise"):
        export_lora(lora, tmp_path / f"motion_{other}_noise.safetensors")


def test_wan22_both_experts_train_one_after_the_other_and_load_and_export_as_a_pair(wan_clips, tmp_path, capsys):
    import copy

    from diffusers import WanPipeline

    from motionsep.adapters import read_lora_record

    pipe = tiny_wan_pipeline()
    both = WanPipeline(**pipe.components | {"transformer_2": copy.deepcopy(pipe.transformer)}, boundary_ratio=0.875)
    model = str(tmp_path / "wan22")
    both.save_pretrained(model)
    config = config_from_dict(
        {
            "model": model,
            "method": "tap",
            "expert": "both",
            "output_dir": str(tmp_path / "pair"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 2, "checkpoint_every": 0, "learning_rate": 1e-2},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )
    out = train(config, progress=False)
    assert [read_lora_record(out / f).expert for f in ("high_noise", "low_noise")] == ["high", "low"]
    ours = MotionPipeline.from_pretrained(model, lora=str(out))  # the pair's folder: each LoRA into its expert
    assert lora_layers(ours.pipe.transformer) and lora_layers(ours.pipe.transformer_2)
    plain = WanPipeline.from_pretrained(model)
    plain.load_lora_weights(str(out / "high_noise"))
    plain.load_lora_weights(str(out / "low_noise"), load_into_transformer_2=True)
    expected = plain_wan_video(plain, "a red square moving right")
    assert np.array_equal(ours("a red square moving right", 0, SAMPLING), expected)
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "motion.safetensors")]) == 0
    assert sorted(p.name for p in tmp_path.glob("motion_*.safetensors")) == [
        "motion_high_noise.safetensors",
        "motion_low_noise.safetensors",
    ]
    one = str(tmp_path / "one-expert")
    tiny_wan_pipeline().save_pretrained(one)
    with pytest.raises(MotionsepError, match="this model has one denoiser: leave expert at high"):
        train(replace(config, model=one, output_dir=str(tmp_path / "x")), progress=False)


def test_wan22_ti2v_5b_trains_and_generates_like_wan21_and_plain_diffusers_loads_its_lora(wan_clips, tmp_path):
    model = str(tmp_path / "ti2v")
    tiny_wan22_ti2v_pipeline().save_pretrained(model)
    config = config_from_dict(
        {
            "model": model,
            "method": "tap",
            "output_dir": str(tmp_path / "lora"),
            "data": {"path": str(wan_clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 2, "checkpoint_every": 0, "learning_rate": 1e-2},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )
    state = prepare(config)
    assert tuple(state.latents.shape[1:3]) == (48, 3)  # the Wan 2.2 VAE: 48 channels; 9 frames -> 3 latent frames
    # the pipeline gives the transformer a timestep per token (`expand_timesteps`), all equal in text-to-video:
    # training's one timestep a clip is the same conditioning
    x, text, t = state.latents[:1], state.text[:1], torch.tensor([600.0])
    tokens = x.shape[2] * (x.shape[3] // 2) * (x.shape[4] // 2)
    with torch.no_grad():
        per_clip = state.family.predict(state.denoiser, x, t, text)
        per_token = state.denoiser(x, t.expand(1, tokens), encoder_hidden_states=text).sample
    torch.testing.assert_close(per_clip, per_token)
    lora = train(config, progress=False)
    video = MotionPipeline.from_pretrained(model, lora=str(lora))("a red square moving right", 0, SAMPLING)
    assert np.array_equal(plain_diffusers_video(model, lora, "a red square moving right"), video)


def test_same_frame_attention_is_each_frame_alone():
    transformer = tiny_wan_pipeline().transformer
    g = torch.Generator().manual_seed(0)
    x, text, t = torch.randn(1, 16, 3, 4, 4, generator=g), torch.randn(1, 7, 32, generator=g), torch.tensor([500])
    with torch.no_grad():
        full = transformer(x, t, encoder_hidden_states=text).sample
        with pathways_off(transformer, WAN, ["cross-frame attention"]):
            off = transformer(x, t, encoder_hidden_states=text).sample
        alone = [transformer(x[:, :, f : f + 1], t, encoder_hidden_states=text).sample for f in range(3)]
    # RoPE is relative: within one frame the temporal rotation cancels, so a frame attending only to itself is
    # the frame run alone
    torch.testing.assert_close(off, torch.cat(alone, dim=2), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(off, full, atol=1e-3)


def test_probe_and_inspect_commands_on_wan(pipeline_dirs, wan_clips, capsys):
    probe = ["probe", "--model", pipeline_dirs["wan"], "--clips", str(wan_clips), "--frames", "9", "--size", "32", "32"]
    assert main([*probe, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "cross-frame attention" in printed
    assert main(["inspect", "--model", "wan-1.3b-config", "--method", "tap", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "wan" and len(report["paths"]["temporal"]["layers"]) == 60
    assert report["trainable_parameters"] == 60 * 32 * (1536 + 1536)  # rank 32 on 1536 -> 1536 q and k
    assert "unavailable" in report["appearance_highway"] and report["expert_boundary"] is None
    # Wan 2.2: A14B's experts are each the 14B's architecture, switched at 0.875; TI2V-5B is one 5B transformer
    assert main(["inspect", "--model", "wan2.2-a14b-config", "--method", "tap", "--json"]) == 0
    a14b = json.loads(capsys.readouterr().out)
    assert a14b["expert_boundary"] == 0.875 and len(a14b["paths"]["temporal"]["layers"]) == 80
    assert main(["inspect", "--model", "wan2.2-ti2v-5b-config", "--method", "tap"]) == 0
    printed = capsys.readouterr().out
    assert "4,999.8 M parameters" in printed and "60 layers in 30 blocks" in printed and "experts" not in printed


def test_comfyui_export_loads_in_plain_diffusers_and_converts_back(pipeline_dirs, wan_lora, tmp_path):
    """The exported file is ComfyUI's native Wan layout, which diffusers' Wan loader also reads: same video."""
    from safetensors.torch import load_file

    from motionsep.export import export_lora, to_diffusers

    out = export_lora(wan_lora, tmp_path / "wan_comfyui.safetensors")
    exported, original = load_file(out), load_file(wan_lora / "pytorch_lora_weights.safetensors")
    assert all(k.startswith("diffusion_model.blocks.") and ".self_attn." in k for k in exported)
    assert sum(k.endswith(".lora_A.weight") for k in exported) == sum(k.endswith(".lora_A.weight") for k in original)
    back = to_diffusers(exported, "wan", 4.0)
    assert back.keys() == original.keys() and all(torch.equal(back[k], original[k]) for k in back)
    ours = MotionPipeline.from_pretrained(pipeline_dirs["wan"], lora=str(wan_lora))("a red square", 0, SAMPLING)
    video = plain_diffusers_video(pipeline_dirs["wan"], out, "a red square")
    assert np.abs(video.astype(int) - ours.astype(int)).max() <= 1  # alpha folded by diffusers: rounding only


def test_noise_prior_on_flow_matching_inverts_towards_noise(pipeline_dirs, wan_clips):
    from dataclasses import replace

    from motionsep.noise_prior import inverse_scheduler

    pipeline = MotionPipeline.from_pretrained(pipeline_dirs["wan"])
    scheduler = inverse_scheduler(pipeline.pipe.scheduler)
    assert type(scheduler).__name__ == "FlowMatchEulerDiscreteScheduler" and scheduler.config.invert_sigmas
    scheduler.set_timesteps(4)
    assert bool((scheduler.sigmas[1:] >= scheduler.sigmas[:-1]).all())  # from data (sigma 0) up to noise
    plain = pipeline("a red square", 0, SAMPLING)
    prior = replace(SAMPLING, noise_prior=0.5, prior_clip=str(wan_clips / "square.mp4"))
    video = pipeline("a red square", 0, prior)
    assert video.shape == plain.shape and not np.array_equal(video, plain)


def test_shapes_world_measurements_run_on_a_wan_model(pipeline_dirs, tmp_path):
    """The world renders 9-frame clips (1 + 4k) for a Wan-family model, and the leakage bench scores them."""
    from motionsep.bench.leakage import LeakageSettings, run_leakage_bench
    from motionsep.toy.protocol import world_frames, world_sampling

    assert world_frames(pipeline_dirs["wan"]) == 9 and world_frames(pipeline_dirs["modelscope"]) == 8
    assert world_sampling(pipeline_dirs["wan"]).num_frames == 9
    settings = LeakageSettings(
        motions=("zigzag",),
        prompts=1,
        seeds=(0,),
        train_steps=1,
        sampling_steps=2,
        model=pipeline_dirs["wan"],
        variants=("no LoRA (floor)", "tap"),
    )
    result = run_leakage_bench(tmp_path, settings, progress=False)
    assert set(result["pooled"]) == {"no LoRA (floor)", "tap"}
    clip = tmp_path / "leakage-work" / "zigzag" / "reference" / "clips" / "zigzag-0.mp4"
    assert read_video(clip).shape[0] == 9
    scored = tmp_path / "leakage-work" / "zigzag" / "scored" / "tap.json"
    import json

    assert len(json.loads(scored.read_text())["predictions"][0]["trajectory"]) == 9  # every frame read back


def _head_built_to_be(transformer, block: int, kind: str, head: int) -> None:
    """Make one head of a block's self-attention temporal (its query is zero: it attends to every token alike,
    so mostly to other frames) or spatial (query and key the same sharp projection: each token finds itself)."""
    attention = transformer.blocks[block].attn1
    per_head = attention.to_q.out_features // attention.heads
    rows = slice(head * per_head, (head + 1) * per_head)
    with torch.no_grad():
        if kind == "temporal":
            attention.to_q.weight[rows] = 0
            attention.to_q.bias[rows] = 0
        else:
            attention.to_k.weight[rows] = attention.to_q.weight[rows]
            attention.to_k.bias[rows] = attention.to_q.bias[rows]
            attention.norm_q.weight[rows] = 30.0
            attention.norm_k.weight[rows] = 30.0


def test_heads_built_to_be_temporal_are_chosen_and_shares_are_attention_mass():
    from motionsep.heads import choose_heads, cross_frame_shares

    transformer = tiny_wan_pipeline().transformer
    _head_built_to_be(transformer, 0, "temporal", 1)
    _head_built_to_be(transformer, 0, "spatial", 0)
    _head_built_to_be(transformer, 1, "temporal", 0)
    _head_built_to_be(transformer, 1, "spatial", 1)
    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(2, 16, 3, 4, 4, generator=g), torch.randn(2, 7, 32, generator=g)
    objective = objective_for(tiny_wan_pipeline().scheduler)
    shares = cross_frame_shares(transformer, WAN, objective, latents, text)
    assert list(shares) == ["blocks.0.attn1", "blocks.1.attn1"]
    # a head attending to every token alike puts 2 of 3 frames' worth of its mass on other frames
    assert shares["blocks.0.attn1"][1] == pytest.approx(2 / 3, abs=1e-3)
    assert shares["blocks.1.attn1"][0] == pytest.approx(2 / 3, abs=1e-3)
    assert shares["blocks.0.attn1"][0] < 0.2 and shares["blocks.1.attn1"][1] < 0.2
    assert choose_heads(shares, 0.5) == {"blocks.0.attn1": [1], "blocks.1.attn1": [0]}
    assert choose_heads(shares, 1.0) == {"blocks.0.attn1": [0, 1], "blocks.1.attn1": [0, 1]}


def test_tap_heads_trains_the_chosen_heads_only_and_saves_a_plain_lora(wan_config, tmp_path):
    from safetensors.torch import load_file

    set_seed(0)
    out = train(wan_config("tap-heads", train={"steps": 3, "learning_rate": 1e-2}), progress=False)
    record = json.loads((out / "motionsep.json").read_text())
    heads = record["heads"]
    assert set(heads) == {"blocks.0.attn1", "blocks.1.attn1"} and all(len(h) == 1 for h in heads.values())
    weights = load_file(str(out / "pytorch_lora_weights.safetensors"))
    for name, chosen in heads.items():
        for layer in ("to_q", "to_k"):
            b = weights[f"transformer.{name}.{layer}.lora_B.weight"].view(2, 12, -1)  # 2 heads of 12 rows
            assert b[chosen[0]].abs().sum() > 0  # trained
            assert torch.equal(b[1 - chosen[0]], torch.zeros_like(b[0]))  # never moved: the head is unchanged
    video = MotionPipeline.from_pretrained(wan_config().model, lora=str(out))("a red square moving right", 0, SAMPLING)
    assert np.array_equal(plain_diffusers_video(wan_config().model, out, "a red square moving right"), video)


def test_heads_are_refused_on_a_unet(pipeline_dirs, clip_dir, tmp_path):
    from motionsep.errors import MotionsepError

    config = config_from_dict(
        {
            "model": pipeline_dirs["modelscope"],
            "method": "tap-heads",
            "output_dir": str(tmp_path / "run"),
            "data": {"path": str(clip_dir), "frames": 8, "size": [16, 16]},
        }
    )
    with pytest.raises(MotionsepError, match="use the method without heads"):
        prepare(config)


def prepared_unchanged(wan_config, method: str):
    """`prepare` on a tiny Wan, checked to leave the transformer's output exactly as it was (all it adds starts at
    zero)."""
    pipe = tiny_wan_pipeline()
    g = torch.Generator().manual_seed(0)
    x, text, t = torch.randn(1, 16, 3, 4, 4, generator=g), torch.randn(1, 7, 32, generator=g), torch.tensor([700])
    with torch.no_grad():
        before = pipe.transformer(x, t, encoder_hidden_states=text).sample
    state = prepare(wan_config(method), pipe=pipe, family=WAN)
    with torch.no_grad():
        assert torch.equal(before, state.denoiser(x, t, encoder_hidden_states=text).sample)
    return state


def test_tap_offsets_trains_lora_and_offsets_only_starting_from_the_unchanged_model(wan_config):
    state = prepared_unchanged(wan_config, "tap-offsets")
    offsets = state.parts["frame_offsets"]
    assert sorted(offsets.tensors) == [f"blocks.{b}.attn1.{w}" for b in (0, 1) for w in ("key", "query")]
    assert all(v.shape == (3, 24) for v in offsets.tensors.values())  # 3 latent frames x (2 heads x 12)
    lora = {id(p) for layer in lora_layers(state.denoiser, MOTION) for p in layer.parameters() if p.requires_grad}
    assert {id(p) for p in state.params[MOTION]} == lora | {id(p) for p in offsets.parameters()}
    assert all(".lora_" in n for n, p in state.denoiser.named_parameters() if p.requires_grad)


def test_tap_offsets_saves_resumes_and_samples_with_its_offsets(wan_config, tmp_path):
    from safetensors.torch import load_file

    from motionsep.parts import OFFSETS_NAME, FrameOffsets

    sections = {"lora": {"rank": 4, "dropout": 0.0}}
    whole = wan_config(
        "tap-offsets",
        train={"steps": 3, "checkpoint_every": 1, "learning_rate": 1e-2},
        output_dir=str(tmp_path / "whole"),
        **sections,
    )
    train(whole, progress=False)
    part = wan_config(
        "tap-offsets",
        train={"steps": 2, "checkpoint_every": 1, "learning_rate": 1e-2},
        output_dir=str(tmp_path / "part"),
        **sections,
    )
    train(part, progress=False)
    train(replace(whole, output_dir=str(tmp_path / "part")), progress=False, resume=True)
    a, b = load_file(tmp_path / "whole" / OFFSETS_NAME), load_file(tmp_path / "part" / OFFSETS_NAME)
    assert a.keys() == b.keys() and all(a[k].abs().sum() > 0 for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    assert json.loads((tmp_path / "whole" / "motionsep.json").read_text())["parts"] == ["frame_offsets"]
    model = wan_config().model
    ours = MotionPipeline.from_pretrained(model, lora=str(tmp_path / "whole"))("a red square moving right", 0, SAMPLING)
    lora_only = plain_diffusers_video(model, tmp_path / "whole", "a red square moving right")
    assert not np.array_equal(ours, lora_only)  # the offsets change the video: they are applied
    transformer = tiny_wan_pipeline().transformer  # a clip of another length: offsets resampled in time
    offsets = FrameOffsets(transformer, WAN, frames=1)
    offsets.load(tmp_path / "whole")
    with torch.no_grad():
        transformer(torch.randn(1, 16, 5, 4, 4), torch.tensor([500]), encoder_hidden_states=torch.randn(1, 7, 32))
    (tmp_path / "whole" / OFFSETS_NAME).unlink()
    with pytest.raises(MotionsepError, match=r"motion_offsets\.safetensors' is missing or corrupt"):
        MotionPipeline.from_pretrained(model, lora=str(tmp_path / "whole"))


def test_tracks_follow_the_object_and_the_tracking_loss_reads_whether_features_move_with_them():
    from motionsep.tracks import latent_tracks, reference_tracks, tracking_loss

    big = np.full((6, 48, 48, 3), 30, np.uint8)
    for i in range(6):
        big[i, 16:32, 4 + 3 * i : 20 + 3 * i] = (220, 60, 40)  # a square 3 px a frame to the right
        big[i, 20:24, 8 + 3 * i : 12 + 3 * i] = (250, 250, 90)  # with a mark, so corners exist inside it
    tracks = reference_tracks(big)
    assert len(tracks) > 0
    np.testing.assert_allclose(np.diff(tracks, axis=1).mean(axis=(0, 1)), [3.0, 0.0], atol=0.3)
    along = latent_tracks(tracks, (48, 48), latent_frames=6, per_latent=1, count=16)[None]
    clip = torch.from_numpy(big).float().permute(3, 0, 1, 2)[None] / 255  # the clip itself as features
    assert tracking_loss(clip, along) < 1e-3  # its features move with its tracks
    still = clip[:, :, :1].repeat(1, 1, 6, 1, 1)  # a clip whose square does not move
    backwards = clip.flip(2)
    assert tracking_loss(still, along) > 0.02 and tracking_loss(backwards, along) > 0.02


def test_det_trains_side_branches_alone_from_the_unchanged_model(wan_config):
    state = prepared_unchanged(wan_config, "det")
    assert not lora_layers(state.denoiser) and not any(p.requires_grad for p in state.denoiser.parameters())
    branches = state.parts["temporal_branch"].branches
    assert sorted(branches) == ["blocks/0/attn1", "blocks/1/attn1"]
    assert {id(p) for p in state.params[MOTION]} == {id(p) for p in branches.parameters()}
    assert state.tracks.shape == (1, 64, 3, 2)  # one clip's 64 tracks over its 3 latent frames


def test_det_saves_its_branches_alone_and_generation_uses_them(wan_config, tmp_path, capsys):
    from motionsep.parts import BRANCH_NAME

    set_seed(0)
    out = train(wan_config("det", train={"steps": 2, "learning_rate": 1e-2}), progress=False)
    assert (out / BRANCH_NAME).is_file() and not (out / "pytorch_lora_weights.safetensors").exists()
    record = json.loads((out / "motionsep.json").read_text())
    assert record["parts"] == ["temporal_branch"] and record["lora_config"] == {}
    rows = list(csv.DictReader((out / "train_log.csv").read_text().splitlines()))
    assert len(rows) == 2 and all(float(r["loss"]) > 0 for r in rows)
    model = wan_config().model
    video = MotionPipeline.from_pretrained(model, lora=str(out))("a red square moving right", 0, SAMPLING)
    base = MotionPipeline.from_pretrained(model)("a red square moving right", 0, SAMPLING)
    assert not np.array_equal(video, base)
    assert main(["export", str(out), "--out", str(tmp_path / "comfy.safetensors")]) == 2
    assert "holds no LoRA (det keeps its motion in temporal_branch)" in capsys.readouterr().err


def test_the_base_loads_at_the_weight_dtype_keeping_wans_fp32_modules_and_an_fp32_lora(wan_config):
    state = prepare(wan_config("tap"), dtype=torch.bfloat16)
    transformer = state.denoiser
    assert transformer.blocks[0].attn1.to_q.base_layer.weight.dtype == torch.bfloat16
    assert transformer.scale_shift_table.dtype == torch.float32  # WanTransformer3DModel._keep_in_fp32_modules
    assert all(p.dtype == torch.float32 for p in state.params[MOTION])


def test_new_scenes_are_drawn_by_the_base_model_inside_training(wan_config):
    """data.augment: new-scenes through `prepare`: the base pipeline draws each copy's caption before any LoRA."""
    scenes = {"phrase": "moving right", "prompts": ["moving left"], "steps": 2, "guidance": 1.0}
    data = {"augment": "new-scenes", "augment_copies": 1, "colour_words": {"red": [220, 60, 40], "blue": [40, 80, 230]}}
    state = prepare(wan_config("tap", data=data | {"new_scenes": scenes}))
    assert state.latents.shape[0] == 2 and state.text.shape[0] == 2  # the clip and its copy
    assert not torch.equal(state.latents[0], state.latents[1]) and not torch.equal(state.text[0], state.text[1])


def test_the_encoders_visit_the_device_to_cache_and_leave_before_the_denoiser_arrives(wan_config):
    """Never the text encoder (Wan's UMT5: 11 GB in bf16) beside the denoiser on the device. "cpu:0" stands in for
    the GPU here: the same memory, a device name of its own."""
    from motionsep.families import WAN

    pipe, moves = tiny_wan_pipeline(), []
    for name in ("vae", "text_encoder", "transformer"):
        module = getattr(pipe, name)
        original = module.to

        def spy(*args, _name=name, _original=original, **kwargs):
            moves.append((_name, str(args[0])))
            return _original(*args, **kwargs)

        module.to = spy
    state = prepare(wan_config(), pipe=pipe, family=WAN, device="cpu:0")
    assert moves == [
        ("vae", "cpu:0"),
        ("text_encoder", "cpu:0"),
        ("vae", "cpu"),
        ("text_encoder", "cpu"),
        ("transformer", "cpu:0"),
    ]
    assert lora_layers(state.denoiser)


def test_an_fp8_base_trains_an_fp32_lora_whose_loss_matches_the_full_precision_one(wan_config):
    set_seed(0)
    plain = prepare(wan_config("tap"))
    set_seed(0)
    state = prepare(wan_config("tap", train={"memory": {"fp8_base": True}}))
    layer = state.denoiser.blocks[0].attn1.to_q
    assert layer.base_layer.weight.dtype == torch.float8_e4m3fn  # stored in float8 ...
    assert all(p.dtype == torch.float32 for p in state.params[MOTION])  # ... the LoRA in fp32
    g = torch.Generator().manual_seed(0)
    batch = sample_batch(plain, g, "cpu")
    losses = [step_losses(s, batch, torch.Generator().manual_seed(1))["temporal"] for s in (plain, state)]
    assert torch.isfinite(losses[1]) and losses[1].item() == pytest.approx(losses[0].item(), rel=0.05)
    losses[1].backward()
    assert all(p.grad is not None for p in state.params[MOTION])


def test_an_fp8_text_encoder_caches_captions_close_to_full_precision(wan_config):
    plain = prepare(wan_config("tap"))
    state = prepare(wan_config("tap", train={"memory": {"fp8_text_encoder": True}}))
    encoder = state.pipe.text_encoder
    linear = next(m for m in encoder.modules() if isinstance(m, torch.nn.Linear))
    assert linear.weight.dtype == torch.float8_e4m3fn  # stored in float8 (the embedding and norms are not layers cast)
    difference = (state.text - plain.text).norm() / plain.text.norm()
    assert 0 < difference.item() < 0.1


def test_inspect_counts_the_dit_methods_parts_and_says_how_heads_are_chosen(pipeline_dirs):
    from motionsep.inspection import inspect_model

    det = inspect_model(pipeline_dirs["wan"], "det", rank=4)
    width, mid = 24, 128  # 2 heads x 12; DeT's 128 channels
    branch = (width * mid + mid) + (mid * mid * 3 + mid) + (mid * width + width)
    assert det["parts"] == {"temporal_branch": {"parameters": 2 * branch, "per_latent_frame": False}}
    assert det["trainable_parameters"] == 2 * branch and "tracking (weight 0.1)" in det["loss"]
    offsets = inspect_model(pipeline_dirs["wan"], "tap-offsets", rank=4)
    assert offsets["parts"]["frame_offsets"] == {"parameters": 2 * 2 * width, "per_latent_frame": True}
    heads = inspect_model(pipeline_dirs["wan"], "tap-heads", rank=4)
    assert "in each of 2 self-attentions, the 1 of 2 heads" in heads["heads"]


def test_method_and_loss_auto_are_each_familys_evidence_backed_default(pipeline_dirs, wan_clips, clip_dir, tmp_path):
    """Wan: full-lora with the across-frames loss (the Wan world's measurements); a U-Net: tap, standard."""
    for family, clips, frames, side, method, loss in (
        ("wan", wan_clips, WAN_FRAMES, WAN_SIZE, "full-lora", "across-frames"),
        ("modelscope", clip_dir, 8, 16, "tap", "standard"),
    ):
        config = config_from_dict(
            {
                "model": pipeline_dirs[family],
                "output_dir": str(tmp_path / family),
                "data": {"path": str(clips), "frames": frames, "size": [side, side]},
                "train": {"steps": 1, "checkpoint_every": 0},
                "lora": {"rank": 4, "dropout": 0.0},
            }
        )
        assert (config.method, config.train.loss) == ("auto", "auto")
        state = prepare(config)
        assert (state.method.name, state.config.train.loss) == (method, loss)
    lora = train(config, progress=False)  # the record says what was trained, not "auto"
    assert json.loads((lora / "motionsep.json").read_text())["method"] == "tap"
