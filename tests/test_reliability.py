"""Nothing lost, nothing crashes: kills, numeric faults, pickles, prompts, determinism."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from motionsep.adapters import load_motion_lora
from motionsep.cli import main
from motionsep.errors import MotionsepError
from motionsep.generate import MotionPipeline, SamplingSettings
from motionsep.models import load_pipeline
from motionsep.train import train


def same_lora(a, b):
    x, y = load_file(a / "pytorch_lora_weights.safetensors"), load_file(b / "pytorch_lora_weights.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_killed_run_resumes_to_the_uninterrupted_lora(make_config, tmp_path):
    sections = {"train": {"steps": 8, "checkpoint_every": 1}, "lora": {"rank": 4, "dropout": 0.1}}
    train(make_config("modelscope", output_dir=str(tmp_path / "whole"), **sections), progress=False)
    config = make_config("modelscope", output_dir=str(tmp_path / "killed"), **sections)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    process = subprocess.Popen(
        [sys.executable, "-m", "motionsep", "train", str(path), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = tmp_path / "killed" / "checkpoints" / "step-000003" / "training_state" / "state.json"
    deadline = time.time() + 120
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # wherever it is: mid-step or mid-write
    process.wait()
    assert not (tmp_path / "killed" / "motionsep.json").exists(), "the run finished before the kill"
    assert main(["train", str(path), "--resume", "--no-progress"]) == 0
    assert same_lora(tmp_path / "whole", tmp_path / "killed")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(make_config, capsys, tmp_path):
    config = make_config("modelscope", train={"steps": 20, "checkpoint_every": 1, "learning_rate": 1e30})
    with pytest.raises(MotionsepError, match=r"loss became (nan|inf) at step (\d+); the last good checkpoint is"):
        train(config, progress=False)
    checkpoints = sorted((tmp_path / "run-modelscope-tap" / "checkpoints").glob("step-*"))
    assert checkpoints
    pipe, _ = load_pipeline(config.model)
    load_motion_lora(pipe.unet, checkpoints[-1])  # the kept checkpoint still loads


def test_pickled_lora_is_refused_and_never_unpickled(pipeline_dirs, make_config, tmp_path):
    out = train(make_config("modelscope"), progress=False)
    (out / "pytorch_lora_weights.safetensors").unlink()
    canary = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    (out / "pytorch_lora_weights.bin").write_bytes(pickle.dumps(Exploit()))
    pipe, _ = load_pipeline(pipeline_dirs["modelscope"])
    with pytest.raises(MotionsepError, match="pickled weights"):
        load_motion_lora(pipe.unet, out)
    assert not canary.exists()


def test_empty_and_overlong_prompts(pipeline_dirs, tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--model",
                pipeline_dirs["modelscope"],
                "--prompt",
                "  ",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "empty prompt" in capsys.readouterr().err
    pipe = MotionPipeline.from_pretrained(pipeline_dirs["modelscope"])
    with pytest.warns(UserWarning, match="the rest is cut off"):
        frames = pipe("a red square " * 40, 0, SamplingSettings(num_frames=4, steps=2))
    assert frames.shape == (4, 16, 16, 3)


def test_same_config_and_seed_give_identical_lora_and_frames(make_config, tmp_path):
    first = train(
        make_config("animatediff", output_dir=str(tmp_path / "a"), lora={"rank": 4, "dropout": 0.1}), progress=False
    )
    second = train(
        make_config("animatediff", output_dir=str(tmp_path / "b"), lora={"rank": 4, "dropout": 0.1}), progress=False
    )
    assert same_lora(first, second)
    settings = SamplingSettings(num_frames=4, steps=3)
    model = make_config("animatediff").model
    video = [
        MotionPipeline.from_pretrained(model, lora=str(folder))("a blue circle", 7, settings)
        for folder in (first, second)
    ]
    assert (video[0] == video[1]).all()


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_a_checkpoint(make_config, tmp_path, monkeypatch):
    import motionsep.train as training

    sections = {"train": {"steps": 2, "checkpoint_every": 1}, "lora": {"rank": 4}}
    config = make_config("modelscope", output_dir=str(tmp_path / "run"), **sections)
    train(config, progress=False)
    (tmp_path / "run" / "notes.txt").write_text("mine")  # not the run's: never touched
    before = _files(tmp_path / "run")
    bad = make_config("modelscope", output_dir=str(tmp_path / "run"), **sections)
    bad.data.path = str(tmp_path / "missing.mp4")
    with pytest.raises(MotionsepError, match="does not exist"):  # refused by its checks: nothing moved
        train(bad, overwrite=True, progress=False)
    assert _files(tmp_path / "run") == before

    def fail(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(training, "checkpoint", fail)  # fails before its first checkpoint is complete
    with pytest.raises(RuntimeError, match="disk gone"):
        train(config, overwrite=True, progress=False)
    assert _files(tmp_path / "run") == before  # the earlier run back, byte for byte
    monkeypatch.undo()
    config.train.seed = 1
    train(config, overwrite=True, progress=False)
    after = _files(tmp_path / "run")
    assert after["notes.txt"] == b"mine" and not (tmp_path / "run" / ".replaced").exists()
    assert after["pytorch_lora_weights.safetensors"] != before["pytorch_lora_weights.safetensors"]
    assert set(after) == set(before)


def _truncate_optimizer(ts):
    (ts / "optimizer.safetensors").write_bytes((ts / "optimizer.safetensors").read_bytes()[:100])


@pytest.mark.parametrize(
    "damage, warns",
    [
        (_truncate_optimizer, True),
        (lambda ts: (ts / "rng.safetensors").write_bytes(b""), True),
        (lambda ts: (ts / "state.json").write_text("{not json"), False),  # no marker: never a complete checkpoint
    ],
    ids=["truncated optimizer", "empty rng", "broken state.json"],
)
def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(make_config, tmp_path, damage, warns):
    import warnings

    sections = {"train": {"steps": 4, "checkpoint_every": 1}, "lora": {"rank": 4, "dropout": 0.0}}
    train(make_config("modelscope", output_dir=str(tmp_path / "whole"), **sections), progress=False)
    first = {**sections, "train": {"steps": 3, "checkpoint_every": 1}}
    train(make_config("modelscope", output_dir=str(tmp_path / "run"), **first), progress=False)
    damage(tmp_path / "run" / "checkpoints" / "step-000003" / "training_state")
    resumed = make_config("modelscope", output_dir=str(tmp_path / "run"), **sections)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(resumed, resume=True, progress=False)
    assert any("step-000003 is damaged" in str(w.message) for w in caught) == warns
    assert same_lora(tmp_path / "whole", tmp_path / "run")  # from step 2, as if nothing had happened


def test_a_redirected_log_gets_a_few_progress_lines_and_no_progress_one_a_checkpoint(make_config, tmp_path):
    config = make_config("modelscope", output_dir=str(tmp_path / "run"), train={"steps": 20, "checkpoint_every": 10})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    logged = subprocess.run([sys.executable, "-m", "motionsep", "train", str(path)], capture_output=True, text=True)
    assert logged.returncode == 0 and logged.stderr.count("\r") <= 4  # a terminal would see 20 redraws or more
    quiet = subprocess.run(
        [sys.executable, "-m", "motionsep", "train", str(path), "--no-progress", "--overwrite"],
        capture_output=True,
        text=True,
    )
    lines = [line for line in quiet.stdout.splitlines() if line.startswith("step ")]
    assert quiet.returncode == 0 and [line.split(":")[0] for line in lines] == ["step 10/20", "step 20/20"]
