"""What every family promises, checked on a tiny pipeline of each (U-Nets and DiTs alike): a zero-initialised
LoRA changes nothing, and a trained LoRA is a diffusers file that the family's plain pipeline loads and samples
the same video with as motionsep does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import load_file

from conftest import plain_video
from motionsep.config import config_from_dict
from motionsep.families import FAMILIES
from motionsep.generate import MotionPipeline, SamplingSettings
from motionsep.models import load_pipeline
from motionsep.train import prepare, train

# (frames, side) of the clips each tiny pipeline takes: any count for a frame-by-frame VAE, 1 + 4k for a causal one
SHAPES = {"modelscope": (8, 16), "animatediff": (8, 16), "wan": (9, 32), "wan-i2v": (9, 32), "cogvideox": (9, 32)}


def test_every_family_is_checked_here():
    assert set(SHAPES) == set(FAMILIES)


def family_config(pipeline_dirs, clip_dir, out, family: str, method: str, **train_settings):
    frames, side = SHAPES[family]
    return config_from_dict(
        {
            "model": pipeline_dirs[family],
            "method": method,
            "output_dir": str(out),
            "data": {"path": str(clip_dir), "frames": frames, "size": [side, side]},
            "train": {"steps": 3, "checkpoint_every": 0, **train_settings},
            "lora": {"rank": 4, "dropout": 0.0},
        }
    )


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_zero_initialised_lora_changes_nothing(pipeline_dirs, clip_dir, tmp_path, family):
    pipe, fam = load_pipeline(pipeline_dirs[family])
    denoiser = fam.denoiser_of(pipe)
    frames, side = SHAPES[family]
    latent_shape = fam.encode_video(pipe.vae, torch.zeros(frames, 3, side, side)).shape
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, *latent_shape, generator=g)
    text = fam.encode_text(pipe, ["a red square"], "cpu")
    t = torch.tensor([700])
    with torch.no_grad():
        before = fam.predict(denoiser, latents, t, text)
    prepare(family_config(pipeline_dirs, clip_dir, tmp_path / "run", family, "full-lora"), pipe=pipe, family=fam)
    with torch.no_grad():
        after = fam.predict(denoiser, latents, t, text)
    # to float rounding: on the CPU a module no LoRA touches may round its last bit differently between two calls
    # on equal inputs; a LoRA that moved anything would move the output by orders of magnitude more
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def load_with_plain_libraries(pipe, denoiser, folder) -> None:
    """The user's recipe, nothing from motionsep: the pipeline's own `load_lora_weights` where the denoiser has
    diffusers' PEFT integration, else (ModelScope's UNet3DConditionModel has none) peft on the denoiser with the
    LoraConfig stored beside the weights, as the README says."""
    if hasattr(denoiser, "load_lora_adapter"):
        pipe.load_lora_weights(str(folder))
        return
    config = LoraConfig(**json.loads((folder / "motionsep.json").read_text())["lora_config"])
    inject_adapter_in_model(config, denoiser)
    state = load_file(folder / "pytorch_lora_weights.safetensors")
    prefix = next(iter(state)).split(".", 1)[0] + "."
    set_peft_model_state_dict(denoiser, {k.removeprefix(prefix): v for k, v in state.items()})


@pytest.mark.parametrize("family", sorted(SHAPES))
def test_lora_loads_with_plain_diffusers_and_gives_the_same_video(pipeline_dirs, clip_dir, tmp_path, family):
    import diffusers

    fam = FAMILIES[family]
    config = family_config(pipeline_dirs, clip_dir, tmp_path / "lora", family, "temporal-lora", learning_rate=0.05)
    lora = train(config, progress=False)
    frames, side = SHAPES[family]
    image = tmp_path / "start.png"  # an image-to-video model's first frame
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(image)
    given = {"image": str(image)} if fam.takes_image() else {}
    settings = SamplingSettings(num_frames=frames, height=side, width=side, steps=3, guidance=1.0, **given)
    prompt = "a red square moving right"
    ours = MotionPipeline.from_pretrained(pipeline_dirs[family], lora=str(lora))(prompt, 0, settings)
    base = MotionPipeline.from_pretrained(pipeline_dirs[family])(prompt, 0, settings)
    assert not np.array_equal(ours, base), "the LoRA had no effect: the test would prove nothing"
    plain = getattr(diffusers, fam.pipeline_class).from_pretrained(pipeline_dirs[family])
    load_with_plain_libraries(plain, fam.denoiser_of(plain), lora)
    inputs = fam.sampling_arguments(plain) | ({"image": Image.open(image)} if given else {})
    assert np.array_equal(plain_video(plain, prompt, frames, side, 3, **inputs), ours)
