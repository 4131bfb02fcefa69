"""Saved LoRAs load with plain diffusers / peft and give what motionsep's loader gives."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from safetensors import safe_open
from safetensors.torch import load_file

from motionsep.adapters import MOTION, load_motion_lora, lora_layers, save_lora_folder
from motionsep.errors import MotionsepError
from motionsep.models import load_pipeline
from motionsep.train import lora_record, prepare, train


def trained_lora(make_config, family, tmp_path):
    """A saved LoRA with non-zero weights (B randomised, as after training)."""
    config = make_config(family, "tap", lora={"rank": 4, "alpha": 8.0})
    state = prepare(config)
    torch.manual_seed(1)
    for layer in lora_layers(state.denoiser, MOTION):
        torch.nn.init.normal_(layer.lora_B[MOTION].weight, std=0.5)
    folder = tmp_path / f"lora-{family}"
    save_lora_folder(state.denoiser, folder, lora_record(state, 0), state.lora_configs)
    return folder


def test_lora_file_format(make_config, tmp_path):
    folder = trained_lora(make_config, "modelscope", tmp_path)
    keys = set(load_file(folder / "pytorch_lora_weights.safetensors"))
    assert keys and all(k.startswith("unet.") for k in keys)
    assert {k.rsplit(".", 2)[-2] for k in keys} == {"lora_A", "lora_B"}
    with safe_open(folder / "pytorch_lora_weights.safetensors", "pt") as f:
        header = json.loads(f.metadata()["lora_adapter_metadata"])
    assert header["unet.r"] == 4 and header["unet.lora_alpha"] == 8.0
    meta = json.loads((folder / "motionsep.json").read_text())
    assert meta["method"] == "tap" and meta["family"] == "modelscope"
    assert meta["appearance_highway"]["enabled"] is True and meta["appearance_highway"]["scale"] == 1.1
    assert meta["train_config"]["data"]["frames"] == 8
    # the stored LoraConfig targets exactly the layers the file holds (peft may shorten the names)
    fresh, _ = load_pipeline(meta["base_model"])
    inject_adapter_in_model(LoraConfig(**meta["lora_config"]), fresh.unet)
    adapted = {n for n, m in fresh.unet.named_modules() if hasattr(m, "base_layer")}
    assert adapted == {k.removeprefix("unet.").rsplit(".lora_", 1)[0] for k in keys}


def test_bad_lora_folders(pipeline_dirs, make_config, tmp_path):
    folder = trained_lora(make_config, "modelscope", tmp_path)
    other, _ = load_pipeline(pipeline_dirs["animatediff"])
    with pytest.raises(MotionsepError, match="trained for the modelscope family"):
        load_motion_lora(other.unet, folder)
    pipe, _ = load_pipeline(pipeline_dirs["modelscope"])
    weights = folder / "pytorch_lora_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(MotionsepError, match="corrupt"):
        load_motion_lora(pipe.unet, folder)
    record = json.loads((folder / "motionsep.json").read_text())
    (folder / "motionsep.json").write_text(json.dumps({**record, "format": "motionsep-lora/2"}))
    with pytest.raises(
        MotionsepError, match=r"format motionsep-lora/2, which this motionsep .* does not read: upgrade"
    ):
        load_motion_lora(pipe.unet, folder)
    del record["steps"]
    (folder / "motionsep.json").write_text(json.dumps(record))
    with pytest.raises(MotionsepError, match="lacks steps"):
        load_motion_lora(pipe.unet, folder)
    (folder / "motionsep.json").unlink()
    with pytest.raises(MotionsepError, match="not a motionsep LoRA"):
        load_motion_lora(pipe.unet, folder)


def test_comfyui_export_of_an_animatediff_lora(make_config, tmp_path, capsys):
    """AnimateDiff-Evolved's own reading of the file (its key rewrite, then up @ down) gives the LoRA's deltas."""
    import json

    from safetensors.torch import load_file

    from motionsep.cli import main
    from motionsep.export import to_diffusers

    lora = train(make_config("animatediff", "motiondirector", train={"learning_rate": 0.05}), progress=False)
    out = tmp_path / "orbit_comfyui.safetensors"
    assert main(["export", str(lora), "--format", "comfyui", "--out", str(out)]) == 0
    exported, original = load_file(out), load_file(lora / "pytorch_lora_weights.safetensors")
    meta = json.loads((lora / "motionsep.json").read_text())["lora_config"]
    scale = meta["lora_alpha"] / meta["r"]
    assert len(exported) == len(original)  # one key for one key
    for key in (k for k in exported if ".down." in k):
        assert "temporal_transformer" in key and ("processor" in key or ".ff.net." in key)
        model_key = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
        model_key = model_key.replace("to_out.", "to_out.0.")  # AnimateDiff-Evolved's rewrite, as it does it
        module = model_key.replace(".temporal_transformer", "").replace(".attention_blocks.0", ".attn1")
        module = module.replace(".attention_blocks.1", ".attn2").removesuffix(".weight")
        delta = scale * original[f"unet.{module}.lora_B.weight"] @ original[f"unet.{module}.lora_A.weight"]
        torch.testing.assert_close(exported[key.replace(".down.", ".up.")] @ exported[key], delta)
    back = to_diffusers(exported, "animatediff", meta["lora_alpha"])
    assert back.keys() == original.keys()
    for key in back:
        torch.testing.assert_close(back[key], original[key], rtol=1e-6, atol=0)
    assert main(["export", str(lora), "--out", str(out)]) == 2  # not overwritten silently
    capsys.readouterr()


def test_comfyui_export_refuses_modelscope_in_one_line(make_config, tmp_path, capsys):
    from motionsep.cli import main

    lora = train(make_config("modelscope"), progress=False)
    assert main(["export", str(lora), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "ComfyUI has no loader for modelscope" in err and len(err.splitlines()) == 1
