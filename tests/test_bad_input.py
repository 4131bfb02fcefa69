"""Bad input: one line naming the problem and the fix, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import moving_square
from motionsep.cli import main


def write_config(tmp_path, pipeline_dirs, clip_path, **extra):
    data = {
        "model": pipeline_dirs["modelscope"],
        "output_dir": str(tmp_path / "out"),
        "data": {"path": str(clip_path), "caption": "a square", "frames": 8, "size": [16, 16]},
        "train": {"steps": 1},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_train(config, capsys, *more):
    code = main(["train", str(config), "--no-progress", *more])
    err = capsys.readouterr().err.strip()
    return code, err


def test_missing_video(tmp_path, pipeline_dirs, capsys):
    code, err = run_train(write_config(tmp_path, pipeline_dirs, tmp_path / "nope.mp4"), capsys)
    assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1


def test_corrupt_video(tmp_path, pipeline_dirs, capsys):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    code, err = run_train(write_config(tmp_path, pipeline_dirs, bad), capsys)
    assert code == 2 and "cannot decode video" in err and len(err.splitlines()) == 1


def test_clip_too_short_says_how_many_frames(tmp_path, pipeline_dirs, capsys):
    from motionsep.video import write_mp4

    clip = write_mp4(moving_square(frames=5), tmp_path / "short.mp4")
    code, err = run_train(write_config(tmp_path, pipeline_dirs, clip), capsys)
    assert code == 2 and "has 5 frames" in err and "need 8" in err


def test_unknown_config_key_names_the_closest(tmp_path, pipeline_dirs, clip_dir, capsys):
    code, err = run_train(write_config(tmp_path, pipeline_dirs, clip_dir, train={"stpes": 3}), capsys)
    assert code == 2 and "train.stpes" in err and "did you mean 'steps'" in err


def test_wrong_type_and_unknown_method_and_target(tmp_path, pipeline_dirs, clip_dir, capsys):
    config = write_config(tmp_path, pipeline_dirs, clip_dir)
    code, err = run_train(config, capsys, "--set", "train.steps=many")
    assert code == 2 and "train.steps" in err and "must be int" in err
    code, err = run_train(config, capsys, "--set", "method=motiondirecter")
    assert code == 2 and "did you mean 'motiondirector'" in err
    code, err = run_train(config, capsys, "--set", "lora.targets=[q, kk]")
    assert code == 2 and "unknown LoRA target 'kk'" in err
    code, err = run_train(config, capsys, "--set", "data.augment=new-scenes", "--set", "data.augment_copies=2")
    assert code == 2 and "set data.new_scenes.phrase" in err
    code, err = run_train(config, capsys, "--set", "data.new_scenes.object_scale=[1.0, 0.5]")
    assert code == 2 and "data.new_scenes.object_scale must be [low, high]" in err
    code, err = run_train(config, capsys, "--set", "data.new_scenes.subject=square")
    assert code == 2 and "set both subject" in err


def test_not_a_pipeline_folder(tmp_path, pipeline_dirs, clip_dir, capsys):
    (tmp_path / "empty").mkdir()
    code, err = run_train(write_config(tmp_path, pipeline_dirs, clip_dir, model=str(tmp_path / "empty")), capsys)
    assert code == 2 and "not a diffusers pipeline folder" in err


def test_unsupported_unet_class(tmp_path, capsys):
    folder = tmp_path / "sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    code = main(["inspect", "--model", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and "its denoiser is UNet2DConditionModel" in err and "WanTransformer3DModel (wan)" in err
    assert "pass --motion-adapter FOLDER (in a config: motion_adapter)" in err


def test_existing_results_are_not_overwritten(tmp_path, pipeline_dirs, clip_dir, capsys):
    config = write_config(tmp_path, pipeline_dirs, clip_dir)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "motionsep.json").write_text("{}")
    code, err = run_train(config, capsys)
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "out" / "motionsep.json").read_text() == "{}"


def test_no_traceback_from_the_real_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "motionsep", "inspect", "--model", str(tmp_path / "missing"), "--method", "tap"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"motionsep: error: model '{tmp_path / 'missing'}' not found: give a diffusers pipeline folder, a hub id or "
        "'toy', 'toy-animatediff', 'toy-wan'"
    ]


def test_bench_refuses_a_learning_rate_of_zero(tmp_path, capsys):
    code = main(["bench", "leakage", "--quick", "--lr", "0", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "learning rate must be above 0" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "leakage.md").exists()


def test_pretraining_on_another_device_is_refused_for_the_families_that_train_on_the_cpu(tmp_path, capsys):
    code = main(["toy", "pretrain", "--family", "animatediff", "--device", "cuda", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--device cuda is for --family wan" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--family", "modelscope", "--cooldown-steps", "10"], "--cooldown-steps is for --family wan"),
        (["--family", "wan", "--steps", "100", "--cooldown-steps", "100"], "fewer than the 100 transformer steps"),
        (["--family", "wan", "--cooldown-steps", "-1"], "--cooldown-steps -1: give 0 or more"),
    ],
)
def test_pretraining_refuses_a_cooldown_it_cannot_follow(tmp_path, capsys, flags, message):
    code = main(["toy", "pretrain", *flags, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from motionsep.cli import build_parser

    def silent(parser: argparse.ArgumentParser, path: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += silent(sub, f"{path} {name}")
            elif not action.help:
                found.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return found

    assert silent(build_parser(), "motionsep") == []


def test_toy_export_refuses_what_it_cannot_ship_and_a_model_already_there(tmp_path, capsys):
    def refusal(*flags: str) -> str:
        code = main(["toy", "export", *flags])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        return err

    run, to = tmp_path / "run", tmp_path / "model"
    assert "is not a pretraining run" in refusal("--run", str(run), "--to", str(to))
    run.mkdir()
    (run / "state.json").write_text("{}")
    to.mkdir()
    (to / "model_index.json").write_text("{}")
    assert "already holds files: choose another --to or pass --overwrite" in refusal("--run", str(run), "--to", str(to))
    assert (to / "model_index.json").read_text() == "{}"  # left as it was
    missing = tmp_path / "quality.json"
    err = refusal("--run", str(run), "--to", str(tmp_path / "new"), "--quality", str(missing))
    assert err.startswith(f"motionsep: error: --quality '{missing}' is not a readable JSON report")


def test_a_learning_rate_written_1e_3_is_a_number_as_in_every_other_yaml_reader(tmp_path):
    from motionsep.config import config_from_dict, load_config

    path = tmp_path / "config.yaml"
    path.write_text("model: toy\ndata: {path: clips}\ntrain:\n  learning_rate: 1e-3\n  weight_decay: 5e-4\n")
    config = load_config(path, ["train.validation.guidance=7e0"])
    assert config.train.learning_rate == 1e-3 and config.train.weight_decay == 5e-4
    assert config.train.validation.guidance == 7.0
    assert (
        config_from_dict({"model": "toy", "data": {"path": "c"}}, ["train.learning_rate=5e-4"]).train.learning_rate
        == 5e-4
    )


@pytest.mark.parametrize("value", ["-0.001", "0", ".nan", ".inf"])
def test_a_learning_rate_that_cannot_train_is_refused_in_one_line(tmp_path, pipeline_dirs, clip_dir, capsys, value):
    code, err = run_train(
        write_config(tmp_path, pipeline_dirs, clip_dir), capsys, "--set", f"train.learning_rate={value}"
    )
    assert code == 2 and "train.learning_rate must be a finite number above 0" in err and len(err.splitlines()) == 1


def test_a_yaml_syntax_error_names_its_line(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("model: toy\ndata:\n  path: clips\n  frames: [8\ntrain: {}\n")
    code = main(["train", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "not valid YAML at line 5" in err and len(err.splitlines()) == 1


def test_help_answers_without_importing_torch():
    code = (
        "import sys\n"
        "from motionsep.cli import build_parser\n"
        "for argv in (['--help'], ['generate', '--help'], ['train', '--help'], ['toy', 'pretrain', '--help']):\n"
        "    try:\n"
        "        build_parser().parse_args(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_loading_models_warns_of_no_deprecated_argument_of_ours(pipeline_dirs):
    import warnings

    from motionsep.models import load_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for family in ("modelscope", "wan"):
            load_pipeline(pipeline_dirs[family])
    assert not [str(w.message) for w in caught if "torch_dtype" in str(w.message)]


def test_a_pipeline_class_the_family_does_not_read_is_one_line(pipeline_dirs, tmp_path, capsys):
    import json
    import shutil

    folder = tmp_path / "sdxl-named"
    shutil.copytree(pipeline_dirs["animatediff"], folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "AnimateDiffSDXLPipeline"}))
    code = main(["generate", "--model", str(folder), "--prompt", "x", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds a AnimateDiffSDXLPipeline with a UNetMotionModel" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "number, words",
    [("ENOSPC", "the disk is full"), ("EROFS", "read-only file system"), ("EACCES", "no permission to write")],
)
def test_a_disk_that_refuses_a_write_is_one_line_naming_the_fix(
    pipeline_dirs, tmp_path, capsys, monkeypatch, number, words
):
    import errno

    import motionsep.generate as generation

    def refuse(*args, **kwargs):
        raise OSError(getattr(errno, number), "refused", str(tmp_path / "o" / "video.mp4"))

    monkeypatch.setattr(generation, "write_mp4", refuse)
    args = ["generate", "--model", pipeline_dirs["modelscope"], "--prompt", "x", "--steps", "1", "--frames", "2"]
    assert main([*args, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "video.mp4" in err and len(err.splitlines()) == 1
