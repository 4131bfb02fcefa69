"""The main job end to end (shortened), on a random model of the shapes-world architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from motionsep.cli import main
from motionsep.demo import run_demo
from motionsep.errors import MotionsepError
from motionsep.toy.protocol import DEMO_LOOKS, REFERENCE_LOOK
from motionsep.video import read_video


@pytest.fixture(scope="module")
def toy_like_model(tmp_path_factory):
    from motionsep.toy.pretrain import build_models, export_pipeline

    return str(export_pipeline(build_models(0), tmp_path_factory.mktemp("toy") / "pipeline"))


def test_demo_prompts_differ_from_reference_in_every_attribute():
    for shape, colour, background in DEMO_LOOKS:
        assert (
            shape != REFERENCE_LOOK["shape"]
            and colour != REFERENCE_LOOK["colour"]
            and background != REFERENCE_LOOK["background"]
        )


@pytest.fixture(scope="module")
def toy_like_animatediff(toy_like_model, tmp_path_factory):
    """The AnimateDiff shapes-world architecture, built the way `toy pretrain --family animatediff` starts it."""
    from diffusers import AnimateDiffPipeline

    from motionsep.models import load_pipeline
    from motionsep.toy.pretrain_animatediff import build_motion_unet

    base, _ = load_pipeline(toy_like_model)
    pipe = AnimateDiffPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=build_motion_unet(base.unet),
        motion_adapter=None,
        scheduler=base.scheduler,
    )
    folder = tmp_path_factory.mktemp("toy-animatediff") / "pipeline"
    pipe.save_pretrained(str(folder))
    return str(folder)


@pytest.mark.parametrize("family", ["modelscope", "animatediff"])
def test_short_demo_writes_every_artefact(toy_like_model, toy_like_animatediff, tmp_path, family):
    from motionsep.demo import DEMO_METHODS, format_demo

    model = toy_like_model if family == "modelscope" else toy_like_animatediff
    out = tmp_path / "demo"
    result = run_demo(out, motion="orbit", model=model, steps=4, seeds=(0,), progress=False, sampling_steps=2)
    assert tuple(result["methods"]) == DEMO_METHODS == ("tap", "motiondirector")
    assert (out / "reference" / "config.yaml").is_file()
    assert len(list((out / "reference" / "clips").glob("*.mp4"))) == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {k: v for k, v in result.items() if k in metrics}
    for method in DEMO_METHODS:
        assert (out / f"lora-{method}" / "pytorch_lora_weights.safetensors").is_file()
        mp4s = sorted((out / "videos" / method).glob("*.mp4"))
        assert len(mp4s) == len(DEMO_LOOKS) and len(list((out / "videos" / method).glob("*.gif"))) == len(DEMO_LOOKS)
        assert read_video(mp4s[0]).shape == (8, 32, 32, 3)
        scored = metrics["methods"][method]
        for key in ("motion_accuracy", "trajectory_error", "appearance_accuracy", "leakage", "generations"):
            assert key in scored
        for attribute in ("shape", "colour", "background"):
            assert {"value", "ci95", "n"} <= set(scored["leakage"][attribute])
        for attribute in ("size", "window"):
            assert {"share", "base_share", "rise"} <= set(scored["leakage"][attribute])
        assert scored["generations"] == len(DEMO_LOOKS)
    from PIL import Image

    sheet = Image.open(out / "contact_sheet.png")  # the reference row, then one row per method and prompt
    assert sheet.height >= (1 + len(DEMO_METHODS) * len(DEMO_LOOKS)) * 96
    summary = format_demo(result)
    assert "motion accuracy" in summary and all(m in summary for m in DEMO_METHODS)


def test_a_demo_method_can_train_on_augmented_copies_and_a_wrong_name_stops_before_any_work(toy_like_model, tmp_path):
    from motionsep.demo import DIT_DEMO_METHODS, demo_methods, demo_recipe
    from motionsep.errors import MotionsepError
    from motionsep.toy.recipes import NEW_LOOKS, RECIPES

    assert demo_methods("toy-wan") == DIT_DEMO_METHODS == (NEW_LOOKS, "full-lora")
    assert demo_recipe(NEW_LOOKS) == RECIPES[NEW_LOOKS] and demo_recipe(NEW_LOOKS).new_shapes
    assert demo_recipe("tap").method == "tap" and demo_recipe("tap").augment_copies == 0
    with pytest.raises(MotionsepError, match="other clips than the demo's four"):
        demo_recipe("full-lora-many-looks")
    with pytest.raises(MotionsepError, match="did you mean 'tap-swap'"):
        run_demo(tmp_path / "bad", methods=("tap", "tap-swapp"), model=toy_like_model, progress=False)
    with pytest.raises(MotionsepError, match="unknown method 'tapp'"):
        run_demo(tmp_path / "bad", methods=("tapp",), model=toy_like_model, progress=False)
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "demo"
    run_demo(out, methods=("tap-swap",), model=toy_like_model, steps=2, seeds=(0,), progress=False, sampling_steps=2)
    record = json.loads((out / "lora-tap-swap" / "motionsep.json").read_text())
    assert record["method"] == "tap"
    assert {k: record["train_config"]["data"][k] for k in ("augment", "augment_copies")} == {
        "augment": "swap-colours",
        "augment_copies": 3,
    }


def test_shipped_model_loads_through_the_normal_loader_and_denoises():
    import numpy as np

    from motionsep.generate import MotionPipeline, SamplingSettings
    from motionsep.models import load_denoiser_config
    from motionsep.toy import embedded_model_path

    assert (embedded_model_path() / "model_index.json").is_file()
    assert load_denoiser_config("toy")["_class_name"] == "UNet3DConditionModel"
    pipeline = MotionPipeline.from_pretrained("toy")
    assert pipeline.family.name == "modelscope"
    frames = pipeline(
        "a red circle moving left quickly on a plain background", 0, SamplingSettings(num_frames=8, steps=1)
    )
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    size = sum(p.stat().st_size for p in embedded_model_path().rglob("*") if p.is_file())
    assert size <= 25 * 2**20


def test_shipped_animatediff_model_loads_through_the_normal_loader_and_denoises():
    import numpy as np

    from motionsep.generate import MotionPipeline, SamplingSettings
    from motionsep.models import load_pipeline
    from motionsep.toy import embedded_model_path

    folder = embedded_model_path("toy-animatediff")
    pipe, family = load_pipeline("toy-animatediff")
    assert family.name == "animatediff" and type(pipe).__name__ == "AnimateDiffPipeline"
    assert type(pipe.unet).__name__ == "UNetMotionModel"
    # no temporal convolution anywhere: the motion modules' attention is the only path across frames
    assert not [n for n, m in pipe.unet.named_modules() if type(m).__name__ == "TemporalConvLayer"]
    pipeline = MotionPipeline.from_pretrained("toy-animatediff")
    frames = pipeline(
        "a red circle moving left quickly on a plain background", 0, SamplingSettings(num_frames=8, steps=2)
    )
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 15 * 2**20
    card = json.loads((folder / "model_card.json").read_text())
    assert card["probe"]["family"] == "animatediff" and card["quality"]["generations"] == 200


def test_shipped_wan_model_loads_through_the_normal_loader_and_denoises():
    import numpy as np

    from motionsep.generate import MotionPipeline, SamplingSettings
    from motionsep.models import load_pipeline
    from motionsep.toy import embedded_model_path

    folder = embedded_model_path("toy-wan")
    pipe, family = load_pipeline("toy-wan")
    assert family.name == "wan" and type(pipe).__name__ == "WanPipeline"
    assert type(pipe.transformer).__name__ == "WanTransformer3DModel" and type(pipe.vae).__name__ == "AutoencoderKLWan"
    assert type(pipe.text_encoder).__name__ == "UMT5EncoderModel"
    pipeline = MotionPipeline.from_pretrained("toy-wan")
    prompt = "a red circle moving left quickly on a plain background"
    frames = pipeline(prompt, 0, SamplingSettings(num_frames=9, height=32, width=32, steps=2))
    assert frames.shape == (9, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 0
    with pytest.raises(MotionsepError, match="beyond this model's reach"):  # Wan's 480 x 832: a one-line error
        pipeline(prompt, 0, SamplingSettings(num_frames=9, height=480, width=832, steps=2))
    own = json.loads((folder / "model_card.json").read_text())["clip_frames"]  # 17: the world's clip length
    assert pipeline(prompt, 0, SamplingSettings(steps=2)).shape == (own, 32, 32, 3)  # by default its own clips
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 15 * 2**20
    card = json.loads((folder / "model_card.json").read_text())
    assert card["probe"]["family"] == "wan" and card["quality"]["generations"] == 200
    assert card["probe"]["tap_pathway"] == "cross-frame attention"


def test_base_model_quality_confusion_agrees_with_accuracy(toy_like_model):
    from motionsep.toy.protocol import world_frames
    from motionsep.toy.quality import base_model_quality

    report = base_model_quality(toy_like_model, n=4, batch=2, progress=False)
    for key in ("shape", "colour", "background"):
        table = report["confusion"][key]
        assert sum(sum(drawn.values()) for drawn in table.values()) == 4
        right = sum(drawn.get(asked, 0) for asked, drawn in table.items())
        assert right / 4 == report["accuracy"][key]["value"]
    assert sum(s["n"] for s in report["shape_accuracy_by_drawn_size"].values()) == 4
    by_frame = report["object_as_prompted_by_frame"]
    assert by_frame["first"]["n"] == 4 and by_frame["later"]["n"] == 4 * (world_frames(toy_like_model) - 1)


def test_toy_render_config_is_the_demo_training_config(tmp_path):
    from motionsep.config import load_config
    from motionsep.toy.reference import toy_training_config, write_reference_clips

    path = write_reference_clips(tmp_path / "zigzag", "zigzag", count=1, steps=300)
    demo = toy_training_config(tmp_path / "zigzag" / "clips", tmp_path / "zigzag" / "lora", steps=300)
    assert load_config(path).to_dict() == demo.to_dict()
    assert demo.lora.dropout == 0.0 and demo.train.batch_size == 4


def test_a_rendered_config_trains_from_any_working_folder(tmp_path, monkeypatch):
    from motionsep.config import load_config
    from motionsep.data import load_clips

    monkeypatch.chdir(tmp_path)
    assert main(["toy", "render", "--out", "ref", "--clips", "1"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(tmp_path / "ref" / "config.yaml")
    assert Path(config.output_dir) == tmp_path / "ref" / "lora"
    assert len(load_clips(config.data)) == 1  # the clips are found from here
