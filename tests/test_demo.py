"""The main job end to end (shortened), on a random model of the shapes-world architecture."""

from __future__ import annotations

import json

import pytest

from motionsep.demo import DEMO_LOOKS, run_demo
from motionsep.toy.reference import REFERENCE_LOOK
from motionsep.video import read_video


@pytest.fixture(scope="module")
def toy_like_model(tmp_path_factory):
    from motionsep.toy.pretrain import build_models, export_pipeline

    return str(export_pipeline(build_models(0), tmp_path_factory.mktemp("toy") / "pipeline"))


def test_demo_prompts_differ_from_reference_in_every_attribute():
    for shape, colour, background in DEMO_LOOKS:
        assert shape != REFERENCE_LOOK["shape"] and colour != REFERENCE_LOOK["colour"] and background != REFERENCE_LOOK["background"]


def test_short_demo_writes_every_artefact(toy_like_model, tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, motion="orbit", model=toy_like_model, steps=4, seeds=(0,), progress=False, sampling_steps=2)
    assert (out / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "reference" / "config.yaml").is_file()
    assert len(list((out / "reference" / "clips").glob("*.mp4"))) == 4
    mp4s = sorted((out / "videos").glob("*.mp4"))
    assert len(mp4s) == len(DEMO_LOOKS) and len(list((out / "videos").glob("*.gif"))) == len(DEMO_LOOKS)
    assert read_video(mp4s[0]).shape == (8, 32, 32, 3)
    assert (out / "contact_sheet.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {k: v for k, v in result.items() if k in metrics}
    for key in ("motion_accuracy", "trajectory_error_px", "appearance_accuracy", "leakage", "generations", "seconds"):
        assert key in metrics
    for attribute in ("shape", "colour", "background"):
        assert {"value", "ci95", "n"} <= set(metrics["leakage"][attribute])
    for attribute in ("size", "window"):
        assert {"share", "base_share", "rise"} <= set(metrics["leakage"][attribute])
    assert metrics["generations"] == len(DEMO_LOOKS)


def test_shipped_model_loads_through_the_normal_loader_and_denoises():
    import numpy as np

    from motionsep.generate import MotionPipeline, SamplingSettings
    from motionsep.models import load_unet_config
    from motionsep.toy import embedded_model_path

    assert (embedded_model_path() / "model_index.json").is_file()
    assert load_unet_config("toy")["_class_name"] == "UNet3DConditionModel"
    pipeline = MotionPipeline.from_pretrained("toy")
    assert pipeline.family.name == "modelscope"
    frames = pipeline("a red circle moving left quickly on a plain background", 0, SamplingSettings(num_frames=8, steps=1))
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    size = sum(p.stat().st_size for p in embedded_model_path().rglob("*") if p.is_file())
    assert size <= 25 * 2**20


def test_base_model_quality_confusion_agrees_with_accuracy(toy_like_model):
    from motionsep.toy.quality import base_model_quality

    report = base_model_quality(toy_like_model, n=4, batch=2, progress=False)
    for key in ("shape", "colour", "background"):
        table = report["confusion"][key]
        assert sum(sum(drawn.values()) for drawn in table.values()) == 4
        right = sum(drawn.get(asked, 0) for asked, drawn in table.items())
        assert right / 4 == report["accuracy"][key]["value"]
    assert sum(s["n"] for s in report["shape_accuracy_by_drawn_size"].values()) == 4


def test_toy_render_config_is_the_demo_training_config(tmp_path):
    from motionsep.config import load_config
    from motionsep.toy.reference import toy_training_config, write_reference_clips

    path = write_reference_clips(tmp_path / "zigzag", "zigzag", count=1, steps=300)
    demo = toy_training_config(tmp_path / "zigzag" / "clips", tmp_path / "zigzag" / "lora", steps=300)
    assert load_config(path).to_dict() == demo.to_dict()
    assert demo.lora.dropout == 0.0 and demo.train.batch_size == 4
