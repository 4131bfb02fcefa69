"""Shapes-world pretraining: both stages run, checkpoint, resume, and export a loadable pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from motionsep.errors import MotionsepError
from motionsep.losses import across_frames
from motionsep.toy.pretrain import PretrainConfig, pretrain


def _tiny(out, vae_steps, denoiser_steps):
    # A large learning rate so that two runs that diverge (weights or optimizer moments not restored)
    # show it in their losses within three steps.
    return PretrainConfig(
        out=str(out),
        vae_steps=vae_steps,
        vae_batch=8,
        denoiser_steps=denoiser_steps,
        denoiser_batch=2,
        lr=0.3,
        checkpoint_every=1,
    )


def _losses(run) -> list[tuple[str, int, float]]:
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [(r["stage"], r["step"], r["loss"]) for r in records if "loss" in r]


def _as_recorded_before_the_rename(run):
    (run / "denoiser_stage").rename(run / "unet_stage")
    for name in ("state.json", "config.json"):
        text = (run / name).read_text().replace('"denoiser_step', '"unet_step').replace('"denoiser_b', '"unet_b')
        (run / name).write_text(text)
    assert '"unet_step": 1' in (run / "state.json").read_text()


def test_resumed_pretraining_follows_the_uninterrupted_run(tmp_path):
    pretrain(_tiny(tmp_path / "straight", 2, 3))
    pretrain(_tiny(tmp_path / "resumed", 1, 0))  # "interrupted" after the VAE's first step,
    pretrain(_tiny(tmp_path / "resumed", 2, 1))  # then after the UNet's first,
    _as_recorded_before_the_rename(tmp_path / "resumed")  # by a version that named the stage "unet"
    pretrain(_tiny(tmp_path / "resumed", 2, 3))
    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert (
        [r[:2] for r in straight]
        == [r[:2] for r in resumed]
        == [("vae", 1), ("vae", 2), ("unet", 1), ("unet", 2), ("unet", 3)]
    )
    # Equal up to float rounding: CPU kernels do not promise bitwise-equal sums from one call to the next,
    # and Adam turns that into +-lr steps on weights whose gradient is about zero (measured: 2e-4 relative).
    assert [r[2] for r in resumed] == pytest.approx([r[2] for r in straight], rel=1e-3)
    assert len({r[2] for r in straight if r[0] == "unet"}) == 3  # the steps do change the model
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["denoiser_step"] == 3
    assert (tmp_path / "resumed" / "pipeline" / "unet" / "config.json").is_file()


def _unet_weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def test_export_ships_the_moving_average_of_the_weights(tmp_path):
    from motionsep.toy.pretrain import export_from_run

    run = tmp_path / "run"
    pretrain(_tiny(run, 1, 3))
    stage = run / "denoiser_stage"
    ema, raw = _unet_weights(stage / "ema_unet"), _unet_weights(stage / "unet")
    shipped = _unet_weights(run / "pipeline" / "unet")
    assert all(torch.equal(shipped[k], ema[k].half()) for k in ema)
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)  # an average, not a copy of the last step
    raw_export = _unet_weights(export_from_run(run, tmp_path / "raw", ema=False) / "unet")
    assert all(torch.equal(raw_export[k], raw[k].half()) for k in raw)
    card = json.loads((run / "pipeline" / "model_card.json").read_text())
    assert card["weights"].startswith("exponential moving average")


def test_motion_loss_sees_only_what_changesacross_frames():
    static = torch.randn(2, 4, 1, 3, 3).expand(2, 4, 8, 3, 3)
    assert torch.allclose(across_frames(static), torch.zeros_like(static), atol=1e-6)
    moving = torch.randn(2, 4, 8, 3, 3)
    assert torch.allclose(across_frames(moving + static), across_frames(moving), atol=1e-6)


def _tiny_animatediff(out, base, steps):
    from motionsep.toy.pretrain_animatediff import AnimateDiffPretrainConfig

    return AnimateDiffPretrainConfig(
        out=str(out),
        base=base,
        motion_steps=2,
        denoiser_steps=steps,
        denoiser_batch=2,
        lr=0.3,
        spatial_lr=0.3,
        motion_heads=2,
        checkpoint_every=1,
    )


def test_animatediff_pretraining_resumes_to_the_uninterrupted_run(pipeline_dirs, tmp_path):
    from motionsep.models import load_pipeline
    from motionsep.toy.pretrain_animatediff import pretrain_animatediff

    base = pipeline_dirs["modelscope"]
    pretrain_animatediff(_tiny_animatediff(tmp_path / "straight", base, 4))
    pretrain_animatediff(_tiny_animatediff(tmp_path / "resumed", base, 1))  # interrupted in the motion-only phase,
    pretrain_animatediff(_tiny_animatediff(tmp_path / "resumed", base, 3))  # and in the phase where both train
    pretrain_animatediff(_tiny_animatediff(tmp_path / "resumed", base, 4))
    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    phases = [("motion", 1), ("motion", 2), ("motion+spatial", 3), ("motion+spatial", 4)]
    assert [r[:2] for r in straight] == [r[:2] for r in resumed] == phases
    assert [r[2] for r in resumed] == pytest.approx([r[2] for r in straight], rel=1e-3)
    pipe, family = load_pipeline(str(tmp_path / "resumed" / "pipeline"))
    assert family.name == "animatediff" and type(pipe.unet).__name__ == "UNetMotionModel"
    assert pipe.unet.config.motion_num_attention_heads == 2


def test_animatediff_pretraining_keeps_the_spatial_weights_in_the_motion_phase(pipeline_dirs, tmp_path):
    from diffusers import UNetMotionModel

    from motionsep.models import load_pipeline
    from motionsep.toy.pretrain_animatediff import build_motion_unet, pretrain_animatediff

    base = pipeline_dirs["modelscope"]
    pretrain_animatediff(_tiny_animatediff(tmp_path / "run", base, 2))
    trained = UNetMotionModel.from_pretrained(str(tmp_path / "run" / "denoiser_stage" / "unet")).state_dict()
    start = build_motion_unet(load_pipeline(base)[0].unet, motion_heads=2).state_dict()
    spatial = [k for k in start if "motion_modules" not in k]
    motion = [k for k in start if "motion_modules" in k]
    assert spatial and all(torch.equal(trained[k], start[k]) for k in spatial)  # the base model's, untouched
    assert any(not torch.equal(trained[k], start[k]) for k in motion)


def test_finetune_from_a_base_holds_the_temporal_convolutions_at_identity(tmp_path):
    """`toy pretrain --base toy --no-temporal-convs`: temporal attention becomes the only path across frames."""
    from motionsep.models import load_pipeline
    from motionsep.toy.pretrain import build_models, export_pipeline

    base = export_pipeline(build_models(0), tmp_path / "base")
    config = PretrainConfig(
        out=str(tmp_path / "run"),
        denoiser_steps=2,
        denoiser_batch=2,
        lr=0.3,
        checkpoint_every=1,
        base=str(base),
        temporal_convs=False,
        narrow_steps=0,
    )
    folder = pretrain(config)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["vae_step"] == 0  # the base's VAE, kept
    pipe, _ = load_pipeline(str(folder))
    start, _ = load_pipeline(str(base))
    convs = [m for m in pipe.unet.modules() if type(m).__name__ == "TemporalConvLayer"]
    assert convs and all(not m.conv4[-1].weight.any() and not m.conv4[-1].bias.any() for m in convs)
    trained, before = pipe.unet.state_dict(), start.unet.state_dict()
    assert any(not torch.equal(trained[k], before[k]) for k in before if "temp_attentions" in k)
    card = json.loads((folder / "model_card.json").read_text())
    assert "held at identity" in card["what"] and "--no-temporal-convs" in card["command"]


def _tiny_wan(out, vae_steps, steps):
    from motionsep.toy.pretrain_wan import WanPretrainConfig

    return WanPretrainConfig(
        out=str(out),
        vae_steps=vae_steps,
        vae_batch=2,
        denoiser_steps=steps,
        denoiser_batch=2,
        lr=0.05,
        checkpoint_every=1,
    )


def test_wan_pretraining_resumes_to_the_uninterrupted_run_and_exports_a_wan_pipeline(tmp_path):
    from motionsep.generate import MotionPipeline, SamplingSettings
    from motionsep.toy.pretrain_wan import WAN_FRAMES, pretrain_wan

    pretrain_wan(_tiny_wan(tmp_path / "straight", 2, 2))
    pretrain_wan(_tiny_wan(tmp_path / "resumed", 1, 0))  # interrupted in the VAE stage,
    pretrain_wan(_tiny_wan(tmp_path / "resumed", 2, 1))  # then in the transformer's
    pretrain_wan(_tiny_wan(tmp_path / "resumed", 2, 2))
    straight, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    stages = [("vae", 1), ("vae", 2), ("transformer", 1), ("transformer", 2)]
    assert [r[:2] for r in straight] == [r[:2] for r in resumed] == stages
    assert [r[2] for r in resumed] == pytest.approx([r[2] for r in straight], rel=1e-3)
    pipeline = MotionPipeline.from_pretrained(str(tmp_path / "resumed" / "pipeline"))
    assert pipeline.family.name == "wan" and pipeline.pipe.vae.config.scale_factor_temporal == 2
    video = pipeline(
        "a red circle moving left", 0, SamplingSettings(num_frames=WAN_FRAMES, height=32, width=32, steps=2)
    )
    assert video.shape == (WAN_FRAMES, 32, 32, 3)  # 9 frames through 5 latent frames and back
    card = json.loads((tmp_path / "resumed" / "pipeline" / "model_card.json").read_text())
    assert card["transformer_steps"] == 2 and "--family wan" in card["command"]


def test_temporal_conv_residuals_measure_what_each_convolution_adds():
    from motionsep.testing import tiny_modelscope_unet
    from motionsep.toy.pretrain import TemporalConvResiduals

    unet = tiny_modelscope_unet()
    layers = [m for m in unet.modules() if type(m).__name__ == "TemporalConvLayer"]
    for layer in layers:  # diffusers zero-initialises the last convolution: give the residuals a size
        torch.nn.init.normal_(layer.conv4[-1].weight, std=0.05)
    reference = []
    handles = [
        layer.register_forward_hook(lambda m, args, out: reference.append(((out - args[0]) ** 2).mean()))
        for layer in layers
    ]
    residuals = TemporalConvResiduals(unet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        unet(torch.randn(1, 4, 4, 8, 8, generator=g), torch.tensor([500]), torch.randn(1, 7, 32, generator=g))
    value = residuals.take()
    assert len(reference) == len(layers) and value > 0
    torch.testing.assert_close(value, torch.stack(reference).mean())
    assert residuals.values == []  # taken: the next step starts empty
    for handle in handles:
        handle.remove()


def test_wan_pretraining_conditions_on_the_prompt_embeddings_wan_pipeline_samples_with():
    from motionsep.families import WAN
    from motionsep.toy.pretrain_wan import _pipeline, build_wan_models, text_embeddings

    models = build_wan_models(0)
    models[1].eval()  # dropout off: the same tensor both ways
    pipe = _pipeline(models)
    captions = ["a red circle moves left on a plain background", "", "a large blue square"]
    sampled, _ = pipe.encode_prompt(
        captions, do_classifier_free_guidance=False, max_sequence_length=WAN.text_tokens, device="cpu"
    )
    trained = text_embeddings(pipe, captions, "cpu")
    assert trained.shape == sampled.shape == (3, 512, 64)
    assert torch.equal(trained, sampled)


def test_wan_learning_rate_warms_up_holds_then_cools_down_to_zero():
    from motionsep.toy.pretrain_wan import WanPretrainConfig, learning_rate

    config = WanPretrainConfig(denoiser_steps=1000, lr=1e-3, cooldown_steps=400)
    lrs = [learning_rate(config, step) for step in range(1, 1001)]
    assert lrs[99] == pytest.approx(0.5e-3) and lrs[199:600] == [1e-3] * 401  # warm-up, then constant to 600
    assert lrs[799] == pytest.approx(0.5e-3, rel=1e-2) and lrs[-1] == pytest.approx(1e-3 / 400)
    assert all(a >= b for a, b in zip(lrs[600:], lrs[601:]))  # falls steadily to the last step
    assert learning_rate(config, 700, warmup_from=600) == pytest.approx(0.5 * 0.7525e-3)  # a resume warms up again
    assert learning_rate(WanPretrainConfig(denoiser_steps=1000, lr=1e-3, cooldown_steps=0), 999) == 1e-3  # none asked
    default = WanPretrainConfig(lr=1e-3)  # the shipped recipe: the last fifth of 25,000 steps
    assert learning_rate(default, 20000) == 1e-3 and learning_rate(default, 22501) == pytest.approx(0.5e-3)


def test_a_warm_start_from_another_patch_size_embeds_and_predicts_as_the_old_patch(tmp_path):
    from motionsep.toy.pretrain_wan import build_wan_models, save_wan_pipeline, warm_start

    old = build_wan_models(0, patch=(1, 2, 2))
    for p in old[3].parameters():  # Wan zero-initialises some projections: give every weight a size
        torch.nn.init.normal_(p, std=0.02)
    folder = save_wan_pipeline(old, tmp_path / "old")
    old_transformer = old[3].to(torch.float16).float()  # what the folder holds
    new = build_wan_models(1, patch=(1, 1, 1))
    warm_start(new, str(folder))
    transformer = new[3]
    blocks = {k: v for k, v in old_transformer.state_dict().items() if k.startswith("blocks.")}
    assert all(torch.equal(transformer.state_dict()[k], v) for k, v in blocks.items())
    coarse = torch.randn(1, 8, 3, 4, 4)
    fine = coarse.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)  # each old patch: one value, 4 tokens
    with torch.no_grad():
        old_tokens, new_tokens = old_transformer.patch_embedding(fine), transformer.patch_embedding(fine)
        torch.testing.assert_close(new_tokens[..., ::2, ::2], old_tokens, atol=1e-5, rtol=1e-4)
        hidden = torch.randn(5, transformer.proj_out.in_features)
        old_out = old_transformer.proj_out(hidden).view(5, 4, 8)  # (p_t, p_h, p_w, C) per token
        torch.testing.assert_close(transformer.proj_out(hidden), old_out.mean(1), atol=1e-5, rtol=1e-4)
    for a, b in zip(new[1].parameters(), old[1].parameters()):  # text encoder and VAE as they were
        torch.testing.assert_close(a, b.half().float())


def test_a_warm_started_run_refuses_to_resume_from_a_changed_model(tmp_path):
    from motionsep.toy.pretrain_wan import build_wan_models, pretrain_wan, save_wan_pipeline

    init = save_wan_pipeline(build_wan_models(0, patch=(1, 2, 2)), tmp_path / "init")
    config = _tiny_wan(tmp_path / "run", 2, 0)  # the VAE fine-tuned, no transformer step saved yet
    config.init_from = str(init)
    pretrain_wan(config)
    assert json.loads((tmp_path / "run" / "state.json").read_text())["vae_step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["init_fingerprint"]
    save_wan_pipeline(build_wan_models(5, patch=(1, 2, 2)), init)  # retrained meanwhile
    with pytest.raises(MotionsepError, match="its weights changed since"):
        pretrain_wan(config)
