"""Wan image-to-video (WanImageToVideoPipeline): conditioning on the first frame as the pipeline does, training,
generation from a user's image, LoRAs that plain diffusers loads, a text-to-video LoRA in an image-to-video model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import plain_wan_video, wan_square
from motionsep.adapters import MOTION, add_lora, lora_layers, make_lora_config
from motionsep.cli import main
from motionsep.config import config_from_dict
from motionsep.errors import MotionsepError
from motionsep.families import WAN_I2V
from motionsep.generate import MotionPipeline, SamplingSettings
from motionsep.methods import METHODS, lora_targets
from motionsep.testing import WAN_FRAMES, WAN_SIZE, tiny_wan_i2v_pipeline, tiny_wan_pipeline
from motionsep.train import prepare, train
from motionsep.video import read_video

PROMPT = "a red square moving right"
SAMPLING = SamplingSettings(num_frames=WAN_FRAMES, height=WAN_SIZE, width=WAN_SIZE, steps=4, guidance=1.0)
TAP = {f"blocks.{b}.attn1.{n}" for b in (0, 1) for n in ("to_q", "to_k")}
# Wan 2.1 I2V: a CLIP image encoder, one transformer; Wan 2.2 I2V A14B: no image encoder, two experts
VARIANTS = {"wan2.1-i2v": {"image_encoder": True}, "wan2.2-i2v-a14b": {"image_encoder": False, "experts": True}}


@pytest.fixture(scope="module")
def start_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("image") / "start.png"
    frame = np.full((WAN_SIZE, WAN_SIZE, 3), 200, np.uint8)
    frame[4:12, 4:12] = (40, 80, 230)  # a blue square the user wants moved
    Image.fromarray(frame).save(path)
    return str(path)


def _config(model: str, clips, out, method: str = "tap", **train) -> object:
    return config_from_dict(
        {
            "model": model,
            "method": method,
            "output_dir": str(out),
            "data": {"path": str(clips), "frames": WAN_FRAMES, "size": [WAN_SIZE, WAN_SIZE]},
            "train": {"steps": 2, "checkpoint_every": 0, "learning_rate": 1e-2, **train},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )


def plain_i2v_video(model: str, lora, image: str) -> np.ndarray:
    """What plain diffusers makes: WanImageToVideoPipeline.load_lora_weights, the same settings, seed 0."""
    from diffusers import WanImageToVideoPipeline

    plain = WanImageToVideoPipeline.from_pretrained(model)
    if lora is not None:
        plain.load_lora_weights(str(lora))
    return plain_wan_video(plain, PROMPT, image=Image.open(image).convert("RGB"))


def test_the_first_frame_conditions_training_as_the_pipeline_conditions_a_video():
    pipe = tiny_wan_i2v_pipeline()
    clip = wan_square()[:WAN_FRAMES]
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 127.5 - 1
    ours = WAN_I2V.encode_conditions(pipe, frames)
    image = pipe.video_processor.preprocess(Image.fromarray(clip[0]), height=WAN_SIZE, width=WAN_SIZE)
    _, condition = pipe.prepare_latents(image, 1, 16, WAN_SIZE, WAN_SIZE, WAN_FRAMES, torch.float32, "cpu")
    torch.testing.assert_close(ours["image_condition"], condition[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["image_embeds"], pipe.encode_image(Image.fromarray(clip[0]), "cpu")[0])
    assert ours["image_condition"].shape == (4 + 16, 3, 4, 4)  # mask and encoded video; 9 frames: 3 latent frames


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_image_to_video_trains_on_first_frames_and_plain_diffusers_loads_its_lora(
    wan_clips, start_image, tmp_path, variant
):
    model = str(tmp_path / variant)
    tiny_wan_i2v_pipeline(**VARIANTS[variant]).save_pretrained(model)
    config = _config(model, wan_clips, tmp_path / "lora")
    state = prepare(config)
    assert state.family is WAN_I2V
    assert set(state.conditions) == (
        {"image_condition", "image_embeds"} if variant == "wan2.1-i2v" else {"image_condition"}
    )
    assert {n for n, m in state.denoiser.named_modules() if m in lora_layers(state.denoiser, MOTION)} == TAP
    if variant == "wan2.2-i2v-a14b":  # the high-noise expert over its own timesteps: t >= 0.9 x 1000
        assert state.objective.draw_timesteps(256, torch.Generator().manual_seed(0)).min() >= 900
    assert all(next(getattr(state.pipe, n).parameters()).device.type == "cpu" for n in ("vae", "text_encoder"))
    lora = train(config, progress=False)
    video = MotionPipeline.from_pretrained(model, lora=str(lora))(PROMPT, 0, replace(SAMPLING, image=start_image))
    assert np.array_equal(plain_i2v_video(model, lora, start_image), video)
    assert not np.array_equal(plain_i2v_video(model, None, start_image), video)  # the LoRA changed it


def test_a_text_to_video_lora_moves_an_image_as_plain_diffusers_does(wan_clips, start_image, tmp_path):
    t2v, i2v = str(tmp_path / "t2v"), str(tmp_path / "i2v")
    tiny_wan_pipeline().save_pretrained(t2v)
    tiny_wan_i2v_pipeline().save_pretrained(i2v)  # the same transformer shape, over 36 channels, image layers added
    lora = train(_config(t2v, wan_clips, tmp_path / "lora", method="full-lora"), progress=False)
    video = MotionPipeline.from_pretrained(i2v, lora=str(lora))(PROMPT, 0, replace(SAMPLING, image=start_image))
    assert np.array_equal(plain_i2v_video(i2v, lora, start_image), video)


def test_generate_image_on_the_command_line_and_one_line_errors(wan_clips, start_image, tmp_path, capsys):
    i2v, t2v = str(tmp_path / "i2v"), str(tmp_path / "t2v")
    tiny_wan_i2v_pipeline(image_encoder=False).save_pretrained(i2v)
    tiny_wan_pipeline().save_pretrained(t2v)
    common = ["--prompt", PROMPT, "--frames", str(WAN_FRAMES), "--height", "32", "--width", "32", "--steps", "2"]
    assert main(["generate", "--model", i2v, *common, "--image", start_image, "--out", str(tmp_path / "v")]) == 0
    assert list((tmp_path / "v").glob("*.mp4"))
    capsys.readouterr()
    for model, extra, message in (
        (i2v, [], "this is an image-to-video model: pass --image"),
        (t2v, ["--image", start_image], "--image needs an image-to-video model"),
        (i2v, ["--image", str(tmp_path / "v" / "generation.json")], "is not an image file"),
    ):
        assert main(["generate", "--model", model, *common, *extra, "--out", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    ti2v = tiny_wan_i2v_pipeline(image_encoder=False)
    ti2v.register_to_config(expand_timesteps=True)  # Wan 2.2 TI2V-5B's image-to-video mode
    with pytest.raises(MotionsepError, match="train on its text-to-video WanPipeline"):
        WAN_I2V.encode_conditions(ti2v, torch.zeros(WAN_FRAMES, 3, WAN_SIZE, WAN_SIZE))
    with pytest.raises(MotionsepError, match="spatial path trains on single frames"):
        prepare(_config(i2v, wan_clips, tmp_path / "md", method="motiondirector"))


def test_validation_samples_an_image_to_video_run_from_its_first_clips_first_frame(wan_clips, tmp_path):
    model = str(tmp_path / "i2v")
    tiny_wan_i2v_pipeline(image_encoder=False).save_pretrained(model)
    config = _config(model, wan_clips, tmp_path / "lora", validation={"prompts": [PROMPT], "steps": 2})
    lora = train(config, progress=False)
    first = np.asarray(Image.open(lora / "samples" / "first-frame.png"))
    assert np.array_equal(first, read_video(wan_clips / "square.mp4")[0])  # the clip's first frame, as training read it
    assert list((lora / "samples" / "step-000002").glob("*.mp4"))


def test_the_pipeline_class_tells_image_to_video_from_text_to_video(tmp_path, capsys):
    from motionsep.models import family_of_model

    tiny_wan_i2v_pipeline(image_encoder=False).save_pretrained(str(tmp_path / "i2v"))
    tiny_wan_pipeline().save_pretrained(str(tmp_path / "t2v"))
    assert family_of_model(str(tmp_path / "i2v")).name == "wan-i2v"  # one transformer class, told by the pipeline
    assert family_of_model(str(tmp_path / "t2v")).name == "wan"
    assert family_of_model("wan-i2v-14b-config").name == "wan-i2v"
    assert main(["inspect", "--model", "wan2.2-i2v-a14b-config", "--method", "tap"]) == 0
    out = capsys.readouterr().out
    assert "wan-i2v, 14,288.9 M parameters" in out and "high noise: t >= 900 of 1000" in out


def test_full_lora_on_image_to_video_adapts_the_blocks_alone():
    """Every block's attentions and feed-forward, as on text-to-video: not the image embedder's feed-forward (whose
    name also ends in ff.net...), not the image key/value projections the text-to-video LoRA cannot fill."""
    denoiser = tiny_wan_i2v_pipeline().transformer
    layers = ("to_q", "to_k", "to_v", "to_out.0")
    expected = {f"blocks.{b}.{a}.{n}" for b in (0, 1) for a in ("attn1", "attn2") for n in layers}
    expected |= {f"blocks.{b}.ffn.{n}" for b in (0, 1) for n in ("net.0.proj", "net.2")}
    names = lora_targets(denoiser, METHODS["full-lora"])["temporal"]
    assert set(names) == expected
    add_lora(denoiser, make_lora_config(names, 4, None, 0.0), MOTION)  # peft matches by suffix: nothing more
    assert {n for n, m in denoiser.named_modules() if m in lora_layers(denoiser, MOTION)} == expected
    assert any(name.startswith("condition_embedder.image_embedder.ff") for name, _ in denoiser.named_modules())
