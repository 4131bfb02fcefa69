"""The probe switches off exactly the named temporal pathways, and reports on any model."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import FAMILIES, run_unet
from motionsep.cli import main
from motionsep.models import load_pipeline
from motionsep.probe import ALL_OFF, NOTHING_OFF, pathway_modules, pathways_off, probe_denoiser_config, skill_kept


def _zero(linear: torch.nn.Module) -> None:
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)


def _blocks(unet, class_name):
    return [b for m in unet.modules() if type(m).__name__ == class_name for b in m.transformer_blocks]


# Each pathway switched off by weight surgery, written from the diffusers classes, not from the probe's patterns:
# a zeroed output projection removes a residual branch, exactly.
def _surgery(unet, pathway: str) -> None:
    if pathway in ("temporal attention", "motion-module attention"):
        cls = "TransformerTemporalModel" if pathway == "temporal attention" else "AnimateDiffTransformer3D"
        for block in _blocks(unet, cls):
            _zero(block.attn1.to_out[0])
            _zero(block.attn2.to_out[0])
    elif pathway == "temporal convolutions":
        for layer in (m for m in unet.modules() if type(m).__name__ == "TemporalConvLayer"):
            _zero(layer.conv4[-1])  # TemporalConvLayer returns identity + conv4(...)
    elif pathway == "transformer_in":
        _zero(unet.transformer_in.proj_out)  # TransformerTemporalModel returns residual + proj_out(...)
    elif pathway == "motion-module feed-forward":
        for block in _blocks(unet, "AnimateDiffTransformer3D"):
            _zero(block.ff.net[-1])
    else:
        raise AssertionError(f"no reference for {pathway}")


@pytest.fixture(scope="module")
def perturbed(pipeline_dirs):
    """Tiny UNets with every weight random: diffusers zero-initialises some output layers, which would hide a miss."""
    out = {}
    for family in FAMILIES:
        pipe, fam = load_pipeline(pipeline_dirs[family])
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in pipe.unet.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        out[family] = (pipe.unet, fam)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_each_pathway_off_equals_its_weight_surgery(perturbed, family):
    unet, fam = perturbed[family]
    full = run_unet(unet, family)
    expected_names = {
        "modelscope": ["temporal attention", "temporal convolutions", "transformer_in"],
        "animatediff": ["motion-module attention", "motion-module feed-forward"],
    }[family]
    assert [p.name for p in fam.pathways] == expected_names
    for pathway in fam.pathways:
        assert pathway_modules(unet, pathway)
        with pathways_off(unet, fam, [pathway.name]):
            hooked = run_unet(unet, family)
        reference = copy.deepcopy(unet)
        _surgery(reference, pathway.name)
        assert torch.allclose(hooked, run_unet(reference, family), atol=1e-5), pathway.name
        assert not torch.allclose(hooked, full, atol=1e-3), f"{pathway.name} changed nothing"
    assert torch.equal(run_unet(unet, family), full)  # the hooks are gone after the block


@pytest.mark.parametrize("family", FAMILIES)
def test_every_pathway_off_makes_frames_independent(perturbed, family):
    """With every temporal layer off, a frame's output does not depend on the other frames."""
    unet, fam = perturbed[family]
    from conftest import unet_inputs

    sample, t, text = unet_inputs(unet, family, frames=4)
    changed = sample.clone()
    changed[:, :, 1:] = torch.randn_like(changed[:, :, 1:])
    with pathways_off(unet, fam, [ALL_OFF]), torch.no_grad():
        a = unet(sample, t, encoder_hidden_states=text).sample[:, :, 0]
        b = unet(changed, t, encoder_hidden_states=text).sample[:, :, 0]
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(
            unet(sample, t, encoder_hidden_states=text).sample[:, :, 0],
            unet(changed, t, encoder_hidden_states=text).sample[:, :, 0],
            atol=1e-4,
        )


def test_skill_kept_scales_between_floor_and_full():
    kept = skill_kept({NOTHING_OFF: 1.0, "a": 2.0, "b": 1.0, ALL_OFF: 5.0})
    assert kept == {NOTHING_OFF: 1.0, "a": 0.75, "b": 1.0, ALL_OFF: 0.0}
    assert skill_kept({NOTHING_OFF: 1.0, ALL_OFF: 1.0})[ALL_OFF] is None  # no cross-frame skill to share out


def test_probe_runs_on_an_architecture_alone(pipeline_dirs):
    config = json.loads((__import__("pathlib").Path(pipeline_dirs["modelscope"]) / "unet" / "config.json").read_text())
    report = probe_denoiser_config(config, frames=4, latent_size=8)
    assert report["family"] == "modelscope" and "random weights" in report["note"]
    assert set(report["model_measure"]["kept"]) == {
        NOTHING_OFF,
        "temporal attention",
        "temporal convolutions",
        "transformer_in",
        ALL_OFF,
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_probe_command_on_a_pipeline_with_clips(pipeline_dirs, clip_dir, tmp_path, capsys, family):
    out = tmp_path / "probe.json"
    code = main(
        [
            "probe",
            "--model",
            pipeline_dirs[family],
            "--clips",
            str(clip_dir),
            "--frames",
            "4",
            "--size",
            "16",
            "16",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "switched off" in table and ALL_OFF in table
    report = json.loads(out.read_text())
    assert report["clips"]["count"] == 1 and report["clips"]["frames"] == 4
    assert report["model_measure"]["kept"][NOTHING_OFF] in (1.0, None)
    assert (
        main(["probe", "--model", pipeline_dirs[family], "--clips", str(clip_dir), "--out", str(out)]) == 2
    )  # never overwritten
