"""Training lowers the loss, writes a loadable LoRA, and refuses to overwrite results."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import set_seed

from conftest import assert_steps_lower_the_loss
from motionsep.adapters import MOTION, SPATIAL
from motionsep.errors import MotionsepError
from motionsep.losses import debiased_loss
from motionsep.train import prepare, sample_batch, step_losses, train


@pytest.mark.parametrize(
    "family,method", [("modelscope", "tap"), ("animatediff", "tap"), ("modelscope", "motiondirector")]
)
def test_steps_lower_the_loss_on_a_fixed_batch(make_config, family, method):
    set_seed(0)
    state = prepare(make_config(family, method, train={"spatial_skip_probability": 0.0}))
    assert_steps_lower_the_loss(state, lr=5e-3)


def test_each_path_updates_only_its_own_lora(make_config):
    state = prepare(make_config("modelscope", "motiondirector", train={"spatial_skip_probability": 0.0}))
    batch = sample_batch(state, torch.Generator().manual_seed(0), "cpu")
    spatial_only = {}

    def backward(loss, inputs):
        loss.backward(inputs=inputs)
        if inputs is state.params[SPATIAL]:
            spatial_only.update({id(p): p.grad.clone() for p in inputs})

    step_losses(state, batch, torch.Generator().manual_seed(1), backward)
    # the temporal loss left the spatial LoRA's gradients as the spatial loss set them
    assert all(torch.equal(p.grad, spatial_only[id(p)]) for p in state.params[SPATIAL])
    assert any(p.grad.abs().sum() > 0 for p in state.params[MOTION])


def test_debiased_loss_matches_motiondirector_formula():
    pred, target = torch.randn(2, 4, 6, 3, 3), torch.randn(2, 4, 6, 3, 3)
    a, beta = 2, 1.0
    alpha = (beta**2 + 1) ** 0.5
    frames = [
        ((alpha * pred[:, :, f] - beta * pred[:, :, a]) - (alpha * target[:, :, f] - beta * target[:, :, a])) ** 2
        for f in range(6)
    ]
    reference = torch.stack(frames).mean()
    assert debiased_loss(pred, target, a).item() == pytest.approx(reference.item(), rel=1e-6)


def test_train_writes_lora_log_and_checkpoints(make_config):
    config = make_config("modelscope", "tap-official", train={"steps": 4, "checkpoint_every": 2})
    out = train(config, progress=False)
    assert (out / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "spatial" / "pytorch_lora_weights.safetensors").is_file()
    assert (out / "checkpoints" / "step-000002" / "motionsep.json").is_file()
    rows = list(csv.DictReader((out / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["spatial"]) > 0 and float(r["temporal"]) > 0 for r in rows)
    with pytest.raises(MotionsepError, match="already holds files"):
        train(config, progress=False)


def test_resume_ends_with_the_uninterrupted_lora(make_config, tmp_path):
    from safetensors.torch import load_file

    sections = {"method": "motiondirector", "lora": {"rank": 4, "dropout": 0.1}}
    whole = make_config(
        "modelscope", train={"steps": 6, "checkpoint_every": 2}, output_dir=str(tmp_path / "whole"), **sections
    )
    train(whole, progress=False)
    # a run stopped after step 3, then resumed with the full budget
    part = make_config(
        "modelscope", train={"steps": 3, "checkpoint_every": 2}, output_dir=str(tmp_path / "part"), **sections
    )
    train(part, progress=False)
    resumed = make_config(
        "modelscope", train={"steps": 6, "checkpoint_every": 2}, output_dir=str(tmp_path / "part"), **sections
    )
    train(resumed, progress=False, resume=True)
    for name in ("pytorch_lora_weights.safetensors", "spatial/pytorch_lora_weights.safetensors"):
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "part" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    rows = list(csv.DictReader((tmp_path / "part" / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    changed = make_config(
        "modelscope", train={"steps": 8}, output_dir=str(tmp_path / "part"), method="motiondirector", lora={"rank": 8}
    )
    with pytest.raises(MotionsepError, match="config differs"):
        train(changed, progress=False, resume=True)


@pytest.mark.parametrize("family,method", [("modelscope", "tap"), ("wan", "motiondirector")])
def test_validation_samples_are_what_generate_gives_and_leave_the_run_unchanged(
    make_config, tmp_path, capsys, monkeypatch, family, method
):
    from safetensors.torch import load_file

    import motionsep.generate
    from motionsep.cli import main
    from motionsep.video import read_video

    validation = {"prompts": ["a blue circle"], "seeds": [3], "every": 2, "steps": 3, "guidance": 4.0}
    sections = {"lora": {"rank": 4, "dropout": 0.1}, "method": method, "data": {"frames": 9 if family == "wan" else 8}}
    plain = make_config(family, train={"steps": 4, "checkpoint_every": 2}, output_dir=str(tmp_path / "a"), **sections)
    sampled = make_config(
        family,
        train={"steps": 4, "checkpoint_every": 2, "validation": validation},
        output_dir=str(tmp_path / "b"),
        **sections,
    )
    train(plain, progress=False)
    with monkeypatch.context() as patch:  # the samples come from the modules the run trains: no second base model
        patch.setattr(motionsep.generate, "load_pipeline", lambda *a, **k: pytest.fail("validation loaded a model"))
        train(sampled, progress=False)
    a, b = load_file(tmp_path / "a" / WEIGHTS), load_file(tmp_path / "b" / WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # sampling changed nothing
    for step in (2, 4):
        folder = tmp_path / "b" / "samples" / f"step-{step:06d}"
        (sample,) = folder.glob("*.mp4")
        assert (folder / "contact_sheet.png").is_file()
        args = ["generate", "--model", plain.model, "--lora", str(tmp_path / "b" / "checkpoints" / f"step-{step:06d}")]
        args += ["--prompt", "a blue circle", "--seed", "3", "--steps", "3", "--guidance", "4"]
        assert main([*args, "--out", str(tmp_path / f"gen-{step}"), "--no-progress"]) == 0
        (generated,) = (tmp_path / f"gen-{step}").glob("*.mp4")
        assert sample.name == generated.name and sample.read_bytes() == generated.read_bytes()
        assert read_video(sample).shape[1:] == (16, 16, 3)
    capsys.readouterr()


WEIGHTS = "pytorch_lora_weights.safetensors"


def test_appearance_augmentation_recolours_every_clip_and_keeps_what_moves_where(make_config):
    from motionsep.data import augmented, load_clips

    config = make_config("modelscope")
    clips = load_clips(config.data)
    copies = augmented(clips, 3, 0.8, seed=0)
    assert len(copies) == 3 * len(clips) and all(c.caption == clips[0].caption for c in copies[:3])
    assert [c.frames.tobytes() for c in copies] == [c.frames.tobytes() for c in augmented(clips, 3, 0.8, seed=0)]
    original = clips[0].frames.reshape(-1, 3)
    for copy in copies[:3]:
        recoloured = copy.frames.reshape(-1, 3)
        assert not np.array_equal(recoloured, original)
        # one colour map for every pixel of every frame: equal colours stay equal, so the motion is unchanged
        _, first, inverse = np.unique(original, axis=0, return_index=True, return_inverse=True)
        assert np.array_equal(recoloured, recoloured[first][inverse.ravel()])
    config.data.augment_copies = 2
    state = prepare(config)
    assert state.latents.shape[0] == 3 * len(clips) and state.text.shape[0] == 3 * len(clips)


def test_swapped_colours_turn_the_named_colour_into_another_and_say_so_in_the_caption():
    from motionsep.data import Clip, augmented

    words = {"red": (220, 30, 30), "blue": (40, 80, 230), "green": (40, 180, 50)}
    frames = np.full((4, 8, 8, 3), 90, np.uint8)
    for i in range(4):  # a red square moving right over grey
        frames[i, 2:5, i : i + 3] = words["red"]
    clip = Clip(Path("a.mp4"), frames, "A red square, moving right.")
    copies = augmented([clip], 6, 0.5, seed=1, kind="swap-colours", colour_words=words)
    assert {c.caption for c in copies} == {"A blue square, moving right.", "A green square, moving right."}
    for copy in copies:
        colour = words[copy.caption.split()[1]]
        square = frames.reshape(-1, 3).tolist().index(list(words["red"]))
        assert copy.frames.reshape(-1, 3)[square].tolist() == list(colour)  # the named colour became the new one
        # one colour map for every pixel: where the square is in each frame is unchanged, so the motion is
        assert np.array_equal((copy.frames == colour).all(-1), (frames == words["red"]).all(-1))
    # a caption naming a colour the clip does not show: no false caption, recoloured at random
    (wrong,) = augmented([Clip(Path("c.mp4"), frames, "a green square")], 1, 0.5, 0, "swap-colours", words)
    assert wrong.caption == "a green square" and not np.array_equal(wrong.frames, frames)
    # a caption naming none of the colours: recoloured at random, the caption kept
    plain = augmented([Clip(Path("b.mp4"), frames, "a square")], 2, 0.5, 0, "swap-colours", words)
    assert [c.caption for c in plain] == ["a square"] * 2 and not np.array_equal(plain[0].frames, frames)


def test_swapped_scene_turns_the_named_colour_and_recolours_the_rest_by_one_map():
    from motionsep.data import Clip, augmented

    words = {"red": (220, 30, 30), "blue": (40, 80, 230), "green": (40, 180, 50)}
    frames = np.full((4, 8, 8, 3), 90, np.uint8)
    frames[:, :, ::2] = (60, 40, 20)  # a brown-striped scene
    for i in range(4):  # a red square moving right over it
        frames[i, 2:5, i : i + 3] = words["red"]
    square = (frames == words["red"]).all(-1)
    copies = augmented([Clip(Path("a.mp4"), frames, "a red square on stripes")], 4, 0.5, 3, "swap-scene", words)
    assert {c.caption for c in copies} <= {"a blue square on stripes", "a green square on stripes"}
    for copy in copies:
        colour = words[copy.caption.split()[1]]
        assert np.array_equal((copy.frames == colour).all(-1), square)  # the object: the new colour, where it was
        scene = copy.frames[~square]
        stripes, rest = scene[frames[~square][:, 0] == 60], scene[frames[~square][:, 0] == 90]
        # the scene: one map for every pixel (equal pixels stay equal, the stripes stay stripes), but a new look
        assert len(np.unique(stripes, axis=0)) == 1 and len(np.unique(rest, axis=0)) == 1
        assert not np.array_equal(stripes[0], (60, 40, 20)) and not np.array_equal(stripes[0], rest[0])
    # a caption naming none of the colours: recoloured at random, the caption kept
    (plain,) = augmented([Clip(Path("b.mp4"), frames, "a square")], 1, 0.5, 0, "swap-scene", words)
    assert plain.caption == "a square" and not np.array_equal(plain.frames, frames)


def test_new_scenes_paint_the_swapped_object_over_a_scene_the_model_draws_without_its_own_object():
    from motionsep.config import NewScenes
    from motionsep.data import Clip, augmented

    words = {"red": (220, 30, 30), "blue": (40, 80, 230), "green": (40, 180, 50)}
    frames = np.full((4, 12, 12, 3), 90, np.uint8)
    for i in range(4):  # a red square moving right over grey
        frames[i, 2:5, i : i + 3] = words["red"]
    drawn = []

    def draw(caption, seed):  # the "model": a still object of the caption's colour on a plain olive scene
        drawn.append(caption)
        video = np.full((4, 12, 12, 3), (120, 120, 40), np.uint8)
        video[:, 7:10, 7:10] = words[caption.split()[1]]
        return video

    scenes = NewScenes("on grey", ["on grey", "on olive"])
    clip = Clip(Path("a.mp4"), frames, "a red square on grey")
    copies = augmented([clip], 3, 0.5, 0, "new-scenes", words, scenes, draw)
    assert drawn == [c.caption for c in copies] and {c.caption.split(" on ")[1] for c in copies} == {"olive"}
    square = (frames == words["red"]).all(-1)
    for copy in copies:
        colour = words[copy.caption.split()[1]]
        assert np.array_equal((copy.frames == colour).all(-1), square)  # the clip's object, moved where it moved
        # the drawn object is painted out: its place shows the drawn scene, as does everything off the object
        assert np.abs(copy.frames[~square].astype(int) - (120, 120, 40)).max() <= 2
    # a caption without the scene phrase: colours swapped over the clip's own scene
    (plain,) = augmented([Clip(Path("b.mp4"), frames, "a red square")], 1, 0.5, 0, "new-scenes", words, scenes, draw)
    assert plain.caption in ("a blue square", "a green square") and len(drawn) == 3


def test_new_scenes_scale_the_object_about_its_centre_so_its_path_stays_the_clips():
    from motionsep.config import NewScenes
    from motionsep.data import Clip, augmented

    words = {"red": (220, 30, 30), "blue": (40, 80, 230)}
    frames = np.full((4, 24, 24, 3), 90, np.uint8)
    for i in range(4):  # an 8x8 red square moving right
        frames[i, 6:14, 2 * i + 4 : 2 * i + 12] = words["red"]

    def draw(caption, seed):
        return np.full((4, 24, 24, 3), (120, 120, 40), np.uint8)

    scenes = NewScenes("on grey", ["on grey", "on olive"], object_scale=[0.5, 0.5])
    (copy,) = augmented(
        [Clip(Path("a.mp4"), frames, "a red square on grey")], 1, 0.5, 0, "new-scenes", words, scenes, draw
    )
    blue = np.abs(copy.frames.astype(int) - words["blue"]).sum(-1) < 30
    for i, frame in enumerate(blue):
        ys, xs = np.nonzero(frame)
        assert len(ys) == 16  # a 4x4 square: half the side
        assert (ys.mean(), xs.mean()) == (9.5, 2 * i + 7.5)  # centred where the clip's square is


def test_new_scenes_with_subjects_move_the_object_the_model_draws_along_the_clips_path():
    from motionsep.config import NewScenes
    from motionsep.data import DRAW_TRIES, Clip, augmented

    words = {"red": (220, 30, 30), "blue": (40, 80, 230)}
    frames = np.full((4, 24, 24, 3), 90, np.uint8)
    for i in range(4):  # a 5x5 red square moving right and down, its centre at (x, y) = (6 + 2i, 8 + i)
        frames[i, 6 + i : 11 + i, 2 * i + 4 : 2 * i + 9] = words["red"]
    cross = np.zeros((24, 24), bool)  # the "model" draws a still blue plus sign, 7 pixels wide, centred at (18, 18)
    cross[15:22, 17:20] = cross[17:20, 15:22] = True
    asked = []

    def drawing(shown):  # a still object of the caption's colour where `shown` is, on a plain olive scene
        def draw(caption, seed):
            asked.append((caption, seed))
            video = np.full((4, 24, 24, 3), (120, 120, 40), np.uint8)
            video[:, shown] = words[caption.split()[1]]
            return video

        return draw

    def copy_of(scenes, draw):
        (copy,) = augmented(
            [Clip(Path("a.mp4"), frames, "a red square on grey")], 1, 0.5, 0, "new-scenes", words, scenes, draw
        )
        return copy

    scenes = NewScenes("on grey", ["on grey", "on olive"], subject="square", subjects=["square", "cross"])
    copy = copy_of(scenes, drawing(cross))
    assert [c for c, _ in asked] == [copy.caption] == ["a blue cross on olive"]  # it names what the copy shows
    blue = (copy.frames == words["blue"]).all(-1)
    for i, frame in enumerate(blue):  # the drawn cross, centred where the clip's square is in each frame
        assert np.array_equal(frame, np.roll(cross, (8 + i - 18, 6 + 2 * i - 18), axis=(0, 1)))
    assert not blue[:, 18, 18].any()  # where the model drew it, its object is painted out
    # no object of that colour in the drawing, or one in pieces (a model that draws the colour badly): drawn
    # again with new seeds, then the clip's own object, and the caption keeps its word
    square = (frames == words["red"]).all(-1)
    for shown in (np.zeros_like(cross), cross & (np.arange(24)[:, None] != 18) & (np.arange(24)[None, :] != 18)):
        asked.clear()
        own = copy_of(scenes, drawing(shown))
        assert len({seed for _, seed in asked}) == DRAW_TRIES and own.caption == "a blue square on olive"
        assert np.array_equal((own.frames == words["blue"]).all(-1), square)
    # the only new look is one to avoid: the copy keeps the clip's scene (colours swapped alone)
    avoid = NewScenes("on grey", ["on olive"], subject="square", subjects=["cross"], avoid=[["Cross", "blue"]])
    assert copy_of(avoid, drawing(cross)).caption == "a blue square on grey"


def test_recompose_keeps_the_moving_pixels_where_they_are_and_changes_the_background():
    from motionsep.data import Clip, augmented, split_layers

    frames = np.zeros((9, 24, 24, 3), np.uint8)
    frames[..., 0] = np.arange(24)[None, None] * 4 + 40  # a static red ramp
    for i in range(9):
        frames[i, 8:14, 2 * i : 2 * i + 6] = (30, 200, 60)  # a green square moving right
    _, mask, _ = split_layers(frames)
    assert np.array_equal(mask, (frames == (30, 200, 60)).all(-1))
    for copy in augmented([Clip(Path("a.mp4"), frames, "x")], 4, 0.5, seed=0, kind="recompose"):
        assert not np.array_equal(copy.frames, frames)
        centre = copy.frames[np.arange(9), 11, 2 * np.arange(9) + 3]  # the square's centre, 2 pixels right a frame
        assert (centre == centre[0]).all()  # one colour: the square moves as it did
        assert (copy.frames[:, 20] == copy.frames[:1, 20]).all()  # the background below it stays still
        assert (copy.frames[0, 11, 20] != centre[0]).any()  # and is not the square's colour where it has not come
    assert split_layers(np.repeat(frames[:1], 9, axis=0)) is None  # nothing moves: no layers to split


def test_augmentation_settings_are_checked(make_config):
    with pytest.raises(MotionsepError, match=r"data\.augment 'swap' is unknown"):
        make_config(data={"augment": "swap"})
    with pytest.raises(MotionsepError, match=r"colour_words\.red must be"):
        make_config(data={"colour_words": {"red": [300, 0, 0], "blue": [0, 0, 255]}})
    with pytest.raises(MotionsepError, match=r"train\.loss 'across' is unknown \(did you mean 'across-frames'"):
        make_config(train={"loss": "across"})


@pytest.mark.parametrize("family", ["modelscope", "wan"])
def test_the_across_frames_loss_gives_what_every_frame_shares_no_gradient(make_config, monkeypatch, family):
    frames = 9 if family == "wan" else 8
    losses = {}
    for loss in ("standard", "across-frames"):
        state = prepare(make_config(family, "full-lora", train={"loss": loss}, data={"frames": frames}))
        batch = sample_batch(state, torch.Generator().manual_seed(0), "cpu")
        plain = step_losses(state, batch, torch.Generator().manual_seed(1))["temporal"]
        predict = type(state.family).predict
        still = torch.randn(batch["latents"][:, :, :1].shape, generator=torch.Generator().manual_seed(2))
        # a change of the prediction that is the same in every frame: a static look
        monkeypatch.setattr(
            type(state.family), "predict", lambda self, *a, p=predict, c=still, **k: p(self, *a, **k) + c
        )
        losses[loss] = (
            float(plain.detach()),
            float(step_losses(state, batch, torch.Generator().manual_seed(1))["temporal"].detach()),
        )
        monkeypatch.undo()
    assert losses["across-frames"][0] == pytest.approx(losses["across-frames"][1], rel=1e-5)
    assert losses["standard"][1] > losses["standard"][0] * 1.2  # the standard loss does see it


def test_weight_files_get_the_permissions_of_the_json_beside_them(make_config):
    import os
    import stat

    out = train(make_config("modelscope", train={"steps": 1, "checkpoint_every": 1}), progress=False)
    files = [p for p in out.rglob("*") if p.is_file()]
    modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in files}
    assert modes["pytorch_lora_weights.safetensors"] == modes["motionsep.json"]
    assert modes["optimizer.safetensors"] == modes["rng.safetensors"] == modes["state.json"]


def _circling(frames: int, phase: int, period: int = 8, size: int = 32) -> np.ndarray:
    """A square going round a circle, one turn every `period` frames, from point `phase` of the turn."""
    video = np.full((frames, size, size, 3), 40, np.uint8)
    for i in range(frames):
        a = 2 * np.pi * (i + phase) / period
        x, y = round(16 + 7 * float(np.cos(a))), round(16 + 7 * float(np.sin(a)))
        video[i, y - 4 : y + 4, x - 4 : x + 4] = (230, 80, 40)
    return video


def test_cyclic_clips_filmed_from_any_point_are_aligned_by_phase_or_the_user_is_told(tmp_path):
    import warnings

    from motionsep.config import DataConfig
    from motionsep.data import load_clips
    from motionsep.video import write_mp4

    for i, phase in enumerate((0, 3, 6, 2)):
        write_mp4(_circling(20, phase), tmp_path / f"clip{i}.mp4")
    config = DataConfig(path=str(tmp_path), caption="a square going round", frames=8, size=[32, 32])
    with pytest.warns(UserWarning, match="out of step.*data.align_phase: true"):
        load_clips(config)
    config.align_phase = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # aligned: nothing to warn of
        aligned = load_clips(config)
    reference = aligned[0].frames.astype(int)
    for clip in aligned[1:]:  # every window starts at the first clip's point of the turn
        assert np.abs(clip.frames.astype(int) - reference).mean() < 8
    in_step = DataConfig(path=str(tmp_path / "clip0.mp4"), caption="x", frames=8, size=[32, 32])
    assert len(load_clips(in_step)) == 1


def test_clips_in_step_from_different_places_raise_no_phase_warning(tmp_path):
    import warnings

    from motionsep.config import DataConfig
    from motionsep.data import load_clips
    from motionsep.toy.reference import write_reference_clips

    # the shapes world's spiral, four clips from four start points: the 32-pixel frames once fooled the flow
    write_reference_clips(tmp_path / "spiral", "spiral", model="toy-wan")
    config = DataConfig(path=str(tmp_path / "spiral" / "clips"), frames=17, size=[32, 32])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_clips(config)) == 4


class _Recorder:
    """An accelerate tracker that keeps what it is given (tracker objects pass through train(trackers=...))."""

    def __init__(self):
        from accelerate.tracking import GeneralTracker

        class Tracker(GeneralTracker):
            name = "recorder"
            requires_logging_directory = False

            def __init__(inner):
                super().__init__()
                inner.config, inner.rows = None, []

            @property
            def tracker(inner):
                return inner

            def store_init_configuration(inner, values):
                inner.config = values

            def log(inner, values, step=None, **kwargs):
                inner.rows.append((step, dict(values)))

        self.tracker = Tracker()


def test_the_learning_rate_schedule_warms_up_decays_and_resumes_in_step_with_trackers(make_config, tmp_path):
    sections = {
        "train": {"steps": 6, "checkpoint_every": 1, "lr_scheduler": "cosine", "lr_warmup_steps": 2},
        "lora": {"rank": 4, "dropout": 0.0},
    }
    whole = _Recorder().tracker
    train(make_config("modelscope", output_dir=str(tmp_path / "whole"), **sections), progress=False, trackers=[whole])
    lrs = [row["learning_rate"] for _, row in whole.rows]
    base = 5e-4
    assert [step for step, _ in whole.rows] == [1, 2, 3, 4, 5, 6] and lrs[0] == pytest.approx(base / 2)
    assert lrs[1] == pytest.approx(base) and lrs[-1] == pytest.approx(0.0, abs=1e-12)  # warmed up, then cosine
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    assert whole.config["train.lr_scheduler"] == "cosine" and "loss" in whole.rows[0][1]
    part = dict(sections, train={**sections["train"], "steps": 3})
    train(make_config("modelscope", output_dir=str(tmp_path / "part"), **part), progress=False)
    resumed = _Recorder().tracker
    train(
        make_config("modelscope", output_dir=str(tmp_path / "part"), **sections),
        progress=False,
        resume=True,
        trackers=[resumed],
    )
    assert [row["learning_rate"] for _, row in resumed.rows] == pytest.approx(lrs[3:])
    from safetensors.torch import load_file

    a = load_file(tmp_path / "whole" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp_path / "part" / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_accumulated_batches_step_as_their_mean_and_gradients_are_clipped(make_config, monkeypatch):
    from accelerate import Accelerator

    import motionsep.train as training

    fixed = {}
    real = training.sample_batch

    def same_batch(state, generator, device):  # one batch every time: N of them average to itself
        fixed.setdefault("batch", real(state, generator, device))
        return fixed["batch"]

    monkeypatch.setattr(training, "sample_batch", same_batch)
    loras = []
    for accumulation in (1, 3):
        fixed.clear()
        set_seed(0)
        config = make_config("modelscope", train={"steps": 2, "gradient_accumulation_steps": accumulation})
        state_dir = train(config, progress=False, overwrite=True)
        from safetensors.torch import load_file

        loras.append(load_file(state_dir / "pytorch_lora_weights.safetensors"))
    assert all(torch.allclose(loras[0][k], loras[1][k], atol=1e-6) for k in loras[0])
    clipped = []
    monkeypatch.setattr(Accelerator, "clip_grad_norm_", lambda self, params, norm: clipped.append(norm))
    train(make_config("modelscope", train={"steps": 2, "max_grad_norm": 0.5}), progress=False, overwrite=True)
    assert clipped == [0.5, 0.5]
    clipped.clear()
    train(make_config("modelscope", train={"steps": 2}), progress=False, overwrite=True)
    assert clipped == []  # 0: off, the default


def test_the_config_examples_in_the_docs_are_valid_configs():
    """Every yaml block of the README and the usage guide passes the config check (a renamed key would fail here)."""
    import re

    import yaml

    from motionsep.config import config_from_dict

    root = Path(__file__).resolve().parents[1]
    blocks = [
        b
        for f in ("README.md", "docs/usage.md")
        for b in re.findall(r"```yaml\n(.*?)```", (root / f).read_text(), re.S)
    ]
    assert blocks
    for block in blocks:
        example = {"model": "toy-wan", "output_dir": "out", **yaml.safe_load(block)}
        example.setdefault("data", {}).setdefault("path", "clips")
        config = config_from_dict(example)
        assert config.to_dict()["data"]["path"] == example["data"]["path"]
