"""Generation: files that decode back, PLI switching, highway defaults from the LoRA."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import record_pli_calls
from motionsep.cli import main
from motionsep.generate import MotionPipeline, SamplingSettings
from motionsep.train import train
from motionsep.video import read_video


@pytest.fixture(scope="module")
def lora_dirs(pipeline_dirs, clip_dir, tmp_path_factory):
    from motionsep.config import config_from_dict

    out = {}
    for family in ("modelscope", "animatediff"):
        config = config_from_dict(
            {
                "model": pipeline_dirs[family],
                "output_dir": str(tmp_path_factory.mktemp("lora") / family),
                "data": {"path": str(clip_dir), "frames": 8, "size": [16, 16]},
                "train": {"steps": 3, "checkpoint_every": 0, "learning_rate": 0.05},
                "lora": {"rank": 4, "dropout": 0.0},
            }
        )
        out[family] = train(config, progress=False)
    return out


@pytest.mark.parametrize("family", ["modelscope", "animatediff"])
def test_generate_cli_writes_decodable_mp4(pipeline_dirs, lora_dirs, tmp_path, family, capsys):
    out = tmp_path / "videos"
    args = [
        "generate",
        "--model",
        pipeline_dirs[family],
        "--lora",
        str(lora_dirs[family]),
        "--prompt",
        "a blue circle",
        "--prompt",
        "a green cross",
        "--seed",
        "3",
        "--frames",
        "6",
        "--steps",
        "3",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    mp4s = sorted(out.glob("*.mp4"))
    assert len(mp4s) == 2 and all(str(p) in printed for p in mp4s)
    for mp4 in mp4s:
        frames = read_video(mp4)
        assert frames.shape == (6, 16, 16, 3)
        assert read_video(mp4.with_suffix(".gif")).shape[0] == 6
    assert (out / "contact_sheet.png").is_file()
    summary = json.loads((out / "generation.json").read_text())
    assert summary["pipeline"]["appearance_highway"]["enabled"] is True  # tap's saved default
    assert main(args) == 2  # results exist: not overwritten silently


def test_pli_switches_lora_by_timestep_without_extra_calls(pipeline_dirs, lora_dirs):
    settings = SamplingSettings(num_frames=4, steps=4)
    base = MotionPipeline.from_pretrained(pipeline_dirs["modelscope"], highway=False)("a red square", 0, settings)
    full = MotionPipeline.from_pretrained(pipeline_dirs["modelscope"], lora=str(lora_dirs["modelscope"]), highway=False)
    with_lora = full("a red square", 0, settings)
    phased = MotionPipeline.from_pretrained(
        pipeline_dirs["modelscope"], lora=str(lora_dirs["modelscope"]), highway=False, pli_tau=500
    )
    calls = record_pli_calls(phased)
    mixed = phased("a red square", 0, settings)
    assert [on for _, on in calls] == [t > 500 for t, _ in calls]
    assert len(calls) == 4  # one UNet call per step, as without PLI
    never = MotionPipeline.from_pretrained(
        pipeline_dirs["modelscope"], lora=str(lora_dirs["modelscope"]), highway=False, pli_tau=1000
    )
    assert np.array_equal(never("a red square", 0, settings), base)  # LoRA never on: the base model exactly
    assert not np.array_equal(with_lora, base)
    assert not np.array_equal(mixed, with_lora)


def test_fused_lora_matches_unfused_and_switches_exactly(pipeline_dirs, lora_dirs):
    import torch

    settings = SamplingSettings(num_frames=4, steps=4)
    model, lora = pipeline_dirs["modelscope"], str(lora_dirs["modelscope"])
    for tau in (-1, 500):
        plain = MotionPipeline.from_pretrained(model, lora=lora, highway=True, pli_tau=tau)("a red square", 0, settings)
        fused = MotionPipeline.from_pretrained(model, lora=lora, highway=True, pli_tau=tau, fuse_lora=True)
        assert (
            np.abs(fused("a red square", 0, settings).astype(int) - plain.astype(int)).max() <= 1
        )  # uint8 rounding only
    unet = fused.pipe.unet
    base = dict(MotionPipeline.from_pretrained(model, highway=False).pipe.unet.named_modules())
    wrapped = {n: m for n, m in unet.named_modules() if hasattr(m, "base_layer")}
    fused.pli.fused.set(True)  # the LoRA phase: the weights hold the LoRA
    assert any(not torch.equal(m.get_base_layer().weight, base[n].weight) for n, m in wrapped.items())
    fused.pli.fused.set(False)  # the phase without LoRA: the original weights, bit for bit
    assert all(torch.equal(m.get_base_layer().weight, base[n].weight) for n, m in wrapped.items())


def _lora_delta(folder) -> dict:
    """Each layer's weight change, from the saved file alone: (alpha / r) * B @ A."""
    from safetensors.torch import load_file

    meta = json.loads((folder / "motionsep.json").read_text())["lora_config"]
    weights = load_file(folder / "pytorch_lora_weights.safetensors")
    scale = meta["lora_alpha"] / meta["r"]
    return {
        k.removeprefix("unet.").removesuffix(".lora_A.weight"): scale
        * weights[k.replace("lora_A", "lora_B")]
        @ weights[k]
        for k in weights
        if ".lora_A." in k
    }


def test_mixed_motion_loras_add_their_weighted_deltas(pipeline_dirs, lora_dirs, make_config, tmp_path):
    import torch

    from conftest import run_unet
    from motionsep.models import load_pipeline

    second = train(
        make_config("modelscope", train={"steps": 2, "learning_rate": 0.05, "seed": 7}, output_dir=str(tmp_path / "b")),
        progress=False,
    )
    first = lora_dirs["modelscope"]
    mixed = MotionPipeline.from_pretrained(
        pipeline_dirs["modelscope"], lora=[str(first), f"{second}:0.6"], highway=False
    )
    assert [(x["weight"], x["kind"]) for x in mixed.describe()["loras"]] == [(1.0, "motion"), (0.6, "motion")]
    reference, _ = load_pipeline(pipeline_dirs["modelscope"])
    modules = dict(reference.unet.named_modules())
    with torch.no_grad():
        for weight, folder in ((1.0, first), (0.6, second)):
            for name, delta in _lora_delta(folder).items():
                modules[name].weight += weight * delta
    torch.testing.assert_close(
        run_unet(mixed.pipe.unet, "modelscope"), run_unet(reference.unet, "modelscope"), rtol=1e-4, atol=1e-5
    )


def test_an_appearance_lora_stacks_and_pli_leaves_it_on(pipeline_dirs, lora_dirs, make_config, tmp_path):
    appearance_run = train(
        make_config("animatediff", "motiondirector", train={"steps": 2, "learning_rate": 0.05}), progress=False
    )
    appearance = str(appearance_run / "spatial")  # a diffusers-format image LoRA with no motionsep.json
    model, motion = pipeline_dirs["animatediff"], str(lora_dirs["animatediff"])
    settings = SamplingSettings(num_frames=4, steps=4)
    base = MotionPipeline.from_pretrained(model)("a red square", 0, settings)
    look = MotionPipeline.from_pretrained(model, lora=appearance)
    alone = look("a red square", 0, settings)
    assert look.describe()["loras"][0]["kind"] == "appearance" and not np.array_equal(alone, base)
    both = MotionPipeline.from_pretrained(model, lora=[motion, appearance], highway=False, pli_tau=1000)
    assert np.array_equal(both("a red square", 0, settings), alone)  # motion never on, the look always
    stacked = MotionPipeline.from_pretrained(model, lora=[motion, appearance], highway=False, pli_tau=-1)
    assert not np.array_equal(stacked("a red square", 0, settings), alone)


def test_bad_mixes_get_one_line(pipeline_dirs, lora_dirs, tmp_path, capsys):
    args = ["generate", "--model", pipeline_dirs["modelscope"], "--prompt", "x", "--out", str(tmp_path / "o")]
    assert main([*args, "--lora", f"{lora_dirs['modelscope']}:strong"]) == 2
    assert "is not a number" in capsys.readouterr().err
    assert main([*args, "--lora", str(lora_dirs["modelscope"]), "--lora", str(lora_dirs["animatediff"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained for the animatediff family" in err and len(err.splitlines()) == 1


def test_noise_prior_starts_from_the_inverted_clip_mixed_with_the_seed_noise(
    pipeline_dirs, lora_dirs, clip_dir, capsys
):
    import math

    import torch
    from diffusers import DDIMInverseScheduler

    from motionsep.noise_prior import inverse_scheduler

    pipeline = MotionPipeline.from_pretrained(pipeline_dirs["modelscope"], lora=str(lora_dirs["modelscope"]))
    assert isinstance(inverse_scheduler(pipeline.pipe.scheduler), DDIMInverseScheduler)
    plain = SamplingSettings(num_frames=8, steps=3)
    prior = SamplingSettings(num_frames=8, steps=3, noise_prior=0.3, prior_clip=str(clip_dir / "square.mp4"))
    first_inputs = []
    handle = pipeline.pipe.unet.register_forward_pre_hook(lambda m, args: first_inputs.append(args[0].clone()))
    without = pipeline("a red square", 5, plain)
    with_prior = pipeline("a red square", 5, prior)
    handle.remove()
    assert not np.array_equal(without, with_prior)
    start = first_inputs[6][1]  # after 3 calls of video 1 and 3 of the inversion; CFG batch: (uncond, cond)
    eps = torch.randn(start.shape, generator=torch.Generator().manual_seed(5))
    inverted = pipeline._inverted[1][0]
    torch.testing.assert_close(start, math.sqrt(0.3) * inverted + math.sqrt(0.7) * eps)
    zero = SamplingSettings(num_frames=8, steps=3, noise_prior=0.0, prior_clip=str(clip_dir / "square.mp4"))
    assert np.array_equal(pipeline("a red square", 5, zero), without)  # P = 0 is plain sampling, bit for bit
    args = ["generate", "--model", pipeline_dirs["modelscope"], "--prompt", "x", "--frames", "40"]
    assert main([*args, "--noise-prior", "0.2", "--prior-clip", str(clip_dir / "square.mp4")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("motionsep: error")]
    assert len(errors) == 1 and "prior clip" in errors[0] and "has 12 frames, fewer than the 40" in errors[0]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--frames", "0"], "--frames 0: give 1 or more frames"),
        (["--steps", "0"], "--steps 0: give 1 or more denoising steps"),
        (["--height", "33", "--width", "31"], "height and width are multiples of 2; pass --height 32 --width 32"),
        (["--height", "20000", "--width", "20000"], "GiB to decode, more than the"),
    ],
)
def test_sampling_settings_the_pipeline_cannot_take_are_one_line_and_write_nothing(
    pipeline_dirs, tmp_path, capsys, flags, message
):
    out = tmp_path / "videos"
    args = ["generate", "--model", pipeline_dirs["animatediff"], "--prompt", "a cat", "--out", str(out), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_an_output_folder_that_is_a_file_is_one_line(pipeline_dirs, tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    args = ["generate", "--model", pipeline_dirs["modelscope"], "--prompt", "x", "--steps", "1", "--frames", "2"]
    assert main([*args, "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err.strip()
    assert "taken' already exists as a file: choose another output folder" in err and len(err.splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize("model, frames", [("toy-animatediff", 8), ("toy-wan", None)])
def test_an_embedded_model_samples_at_its_own_clip_length_and_size(model, frames):
    from motionsep.toy.protocol import world_frames

    pipeline = MotionPipeline.from_pretrained(model)
    expected = frames or world_frames(model)
    assert pipeline.resolved(SamplingSettings()) == (expected, 32, 32)
    assert pipeline.resolved(SamplingSettings(num_frames=4, height=16)) == (4, 16, 32)


def test_a_lora_of_another_family_is_refused_instead_of_changing_nothing(pipeline_dirs, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    wan_like = tmp_path / "wan_lora.safetensors"  # a bare Wan LoRA file, as another trainer writes it
    save_file(
        {
            "transformer.blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 24),
            "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.randn(24, 4),
        },
        str(wan_like),
    )
    args = ["generate", "--model", pipeline_dirs["animatediff"], "--prompt", "x", "--lora", str(wan_like)]
    assert main([*args, "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "changes nothing in this animatediff model" in err and len(err.splitlines()) == 1
