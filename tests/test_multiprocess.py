"""Training on several processes (DDP over gloo on the CPU), as on several GPUs: one LoRA, shards, resume."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import torch
import yaml

from conftest import moving_square
from motionsep.video import write_mp4


def _launch(config_path, *more) -> None:
    """`torchrun --nproc_per_node 2 -m motionsep train` with accelerate on the CPU (ACCELERATE_USE_CPU)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    command += ["-m", "motionsep", "train", str(config_path), "--no-progress", *more]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _config(tmp_path, pipeline_dirs, clips, name, steps) -> object:
    data = {
        "model": pipeline_dirs["modelscope"],
        "method": "motiondirector",  # the dual path: two partial backward passes a step, each averaged
        "output_dir": str(tmp_path / "run"),
        "data": {"path": str(clips), "frames": 8, "size": [16, 16]},
        "train": {"steps": steps, "checkpoint_every": 2, "learning_rate": 0.02},
        "lora": {"rank": 4, "dropout": 0.1},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_two_processes_train_one_lora_that_resumes_and_loads(pipeline_dirs, tmp_path):
    from safetensors.torch import load_file

    from motionsep.config import load_config
    from motionsep.losses import DenoisingObjective
    from motionsep.train import prepare

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(4):  # two clips for each process
        write_mp4(np.roll(moving_square(), 2 * i, axis=1), clips / f"clip{i}.mp4")
        (clips / f"clip{i}.txt").write_text("a red square moving right\n")
    whole_dir, part_dir = tmp_path / "whole", tmp_path / "part"
    whole_dir.mkdir()
    part_dir.mkdir()
    _launch(_config(whole_dir, pipeline_dirs, clips, "c", 8))
    _launch(_config(part_dir, pipeline_dirs, clips, "c", 4))  # stopped at step 4, then resumed to 8
    _launch(_config(part_dir, pipeline_dirs, clips, "c", 8), "--resume")
    for name in ("pytorch_lora_weights.safetensors", "spatial/pytorch_lora_weights.safetensors"):
        whole, part = (load_file(d / "run" / name) for d in (whole_dir, part_dir))
        assert whole.keys() == part.keys()
        for key in whole:
            torch.testing.assert_close(whole[key], part[key], rtol=1e-5, atol=1e-6)
    state = part_dir / "run" / "checkpoints" / "step-000004" / "training_state"
    assert (state / "rng.safetensors").is_file() and (state / "rng-1.safetensors").is_file()  # each its own streams
    rows = list(csv.DictReader((part_dir / "run" / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # one log, from the main process
    # the LoRA loads as any other, and lowers the loss on a fixed batch of the clips
    config = load_config(part_dir / "c.yaml")
    state = prepare(config)
    objective = DenoisingObjective(state.pipe.scheduler)
    g = torch.Generator().manual_seed(0)
    latents, text = state.latents, state.text
    noise = torch.randn(latents.shape, generator=g)
    t = torch.full((latents.shape[0],), 500)

    def loss() -> float:
        with torch.no_grad():
            pred = state.denoiser(objective.noisy(latents, noise, t), t, encoder_hidden_states=text).sample
        return float(objective.loss(pred, objective.target(latents, noise, t), t))

    state.denoiser.eval()
    before = loss()
    from motionsep.adapters import MOTION, read_lora_weights, set_lora_weights

    folder = part_dir / "run"
    set_lora_weights(state.denoiser, read_lora_weights(folder / "pytorch_lora_weights.safetensors"), MOTION, folder)
    assert loss() < before
