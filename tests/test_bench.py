"""Benchmarks: the leakage bench runs every variant, reports with CIs, resumes without redoing work;
the cost bench measures what the methods really train and save."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pytest
from PIL import Image

from motionsep.bench.cost import CostSettings, measure_training, run_cost_bench
from motionsep.bench.leakage import DIT_VARIANTS, UNET_VARIANTS, LeakageSettings, run_leakage_bench
from motionsep.errors import MotionsepError
from motionsep.methods import lora_parameter_count, lora_targets, resolve_method
from motionsep.toy.protocol import BENCH_LOOKS, REFERENCE_LOOK


@pytest.fixture(scope="module")
def toy_like_model(tmp_path_factory):
    from motionsep.toy.pretrain import build_models, export_pipeline

    return str(export_pipeline(build_models(0), tmp_path_factory.mktemp("toy") / "pipeline"))


@pytest.fixture(scope="module")
def wan_world_model(tmp_path_factory):
    from motionsep.toy.pretrain_wan import build_wan_models, save_wan_pipeline

    return str(save_wan_pipeline(build_wan_models(0), tmp_path_factory.mktemp("toy-wan") / "pipeline"))


def test_leakage_bench_on_a_dit_runs_the_dit_rows_against_full_lora(wan_world_model, tmp_path):
    settings = LeakageSettings(
        motions=("zigzag",),
        prompts=1,
        seeds=(0,),
        train_steps=1,
        sampling_steps=2,
        model=wan_world_model,
        foreign=("tap",),
    )
    result = run_leakage_bench(tmp_path, settings, progress=False)
    assert list(result["pooled"]) == list(DIT_VARIANTS)
    row = result["foreign"]["tap"]  # trained on the foreign clips, read by point tracks against the base model
    assert row["base_error"]["n"] == row["lora_error"]["n"] == 4 and isinstance(row["carries_motion"], bool)
    foreign = tmp_path / "leakage-work" / "foreign" / "clips"
    assert len(list(foreign.glob("*.mp4"))) == 4
    assert all("moving" not in p.read_text() for p in foreign.glob("*.txt"))  # captions name no motion
    assert "## Foreign clips" in (tmp_path / "leakage.md").read_text()
    sheet = Image.open(tmp_path / "foreign-sheet.png")  # the reference, the base model and the LoRA: 3 rows
    assert sheet.height >= 3 * 72 and str(tmp_path / "foreign-sheet.png") in result["sheets"]
    assert result["target"]["baseline"] == "full-lora"
    assert {"tap", "tap-heads", "tap-offsets", "det"} <= set(result["target"]["candidates"])
    report = (tmp_path / "leakage.md").read_text()
    assert "of the motion accuracy of multi-look control: full-lora, 16 looks" in report
    assert "of full-lora's rise on each unnamed attribute" in report
    assert result["settings"]["model"] == wan_world_model
    reference = tmp_path / "leakage-work" / "zigzag" / "reference" / "clips"
    first = sorted(reference.glob("*.mp4"))[0]
    from motionsep.video import read_video

    assert len(read_video(first)) == 9  # the world's clips are 1 + 4k frames for Wan's causal VAE
    # the multi-look control trained on 16 clips of zigzag, each a look of its own and none of the prompts'
    many = json.loads((tmp_path / "leakage-work" / "zigzag" / "reference-many-looks" / "scenes.json").read_text())
    looks = {(s["shape"], s["colour"], s["background"]) for s in many}
    assert len(many) == len(looks) == 16 and not looks & set(BENCH_LOOKS)
    assert {s["motion"] for s in many} == {"zigzag"}
    record = tmp_path / "leakage-work" / "zigzag" / "loras" / "full-lora-many-looks" / "motionsep.json"
    assert json.loads(record.read_text())["train_config"]["data"]["path"].endswith("reference-many-looks/clips")
    with pytest.raises(MotionsepError, match="Appearance Highway, which a DiT has not"):
        LeakageSettings(model=wan_world_model, variants=("tap + AH",)).check()


def test_bench_prompts_differ_from_reference_in_every_attribute():
    assert len(BENCH_LOOKS) >= 8 and len(set(BENCH_LOOKS)) == len(BENCH_LOOKS)
    for shape, colour, background in BENCH_LOOKS:
        assert (
            shape != REFERENCE_LOOK["shape"]
            and colour != REFERENCE_LOOK["colour"]
            and background != REFERENCE_LOOK["background"]
        )


def test_leakage_bench_reports_every_variant_and_resumes(toy_like_model, tmp_path):
    settings = LeakageSettings(
        motions=("bounce",), prompts=2, seeds=(0,), train_steps=1, sampling_steps=2, model=toy_like_model, foreign=()
    )
    result = run_leakage_bench(tmp_path, settings, progress=False)
    names = list(UNET_VARIANTS)
    assert list(result["pooled"]) == names
    for name in names:
        row = result["pooled"][name]
        assert row["generations"] == 2
        assert {"value", "ci95", "n"} <= set(row["motion_accuracy"])
        for a in ("size", "window"):
            assert {"share", "base_share", "rise"} <= set(row["leakage"][a])
    floor = result["pooled"]["no LoRA (floor)"]
    assert all(floor["leakage"][a]["rise"]["value"] == 0 for a in ("size", "window"))  # the floor is its own base
    report = (tmp_path / "leakage.md").read_text()
    assert all(f"| {name} |" in report for name in names) and "positive control" in report
    assert Image.open(tmp_path / "leakage.png").size[0] > 500
    assert Image.open(result["sheets"][0]).size[1] > len(names) * 72  # a row per variant plus the reference
    # finished pieces are reused: no LoRA is trained again, and the numbers are the same
    lora = tmp_path / "leakage-work" / "bounce" / "loras" / "tap" / "pytorch_lora_weights.safetensors"
    stamp = lora.stat().st_mtime_ns
    with pytest.raises(MotionsepError, match="already exists"):
        run_leakage_bench(tmp_path, settings, progress=False)
    with pytest.raises(MotionsepError, match="--resume"):
        run_leakage_bench(tmp_path, settings, overwrite=True, progress=False)
    again = run_leakage_bench(tmp_path, settings, resume=True, overwrite=True, progress=False)
    assert lora.stat().st_mtime_ns == stamp
    assert again["pooled"] == result["pooled"]
    # a resume may ask for fewer (or more) variants: each is scored on its own
    fewer = run_leakage_bench(
        tmp_path,
        LeakageSettings(**{**settings.__dict__, "variants": ("tap",)}),
        resume=True,
        overwrite=True,
        progress=False,
    )
    assert list(fewer["pooled"]) == ["no LoRA (floor)", "tap"] and fewer["pooled"]["tap"] == result["pooled"]["tap"]
    _merges_runs_of_one_protocol(tmp_path, result)
    with pytest.raises(MotionsepError, match="other settings"):
        run_leakage_bench(
            tmp_path,
            LeakageSettings(**{**settings.__dict__, "train_steps": 2}),
            resume=True,
            overwrite=True,
            progress=False,
        )
    # pieces made with other weights of the same model (retrained since) are not reused
    stamp_file = tmp_path / "leakage-work" / "settings.json"
    stamp_file.write_text(json.dumps({**json.loads(stamp_file.read_text()), "model_weights": "0123456789abcdef"}))
    with pytest.raises(MotionsepError, match="other weights of"):
        run_leakage_bench(tmp_path, settings, resume=True, overwrite=True, progress=False)


def _merges_runs_of_one_protocol(tmp_path, whole: dict) -> None:
    """Two runs that chose different variants (here: the whole run's report cut in two) make one report."""
    from motionsep.bench.leakage import merge_leakage_reports

    parts = []
    for i, keep in enumerate((["no LoRA (floor)", "tap"], [n for n in whole["pooled"] if n != "tap"])):
        part = {**whole, "pooled": {n: whole["pooled"][n] for n in keep}}
        part["variants"] = {n: whole["variants"][n] for n in keep}
        (tmp_path / f"part{i}.json").write_text(json.dumps(part))
        parts.append(tmp_path / f"part{i}.json")
    merged = merge_leakage_reports(parts, tmp_path / "merged")
    assert merged["pooled"] == whole["pooled"] and list(merged["variants"]) == list(whole["variants"])
    report = (tmp_path / "merged" / "leakage.md").read_text()
    assert all(f"| {name} |" in report for name in whole["pooled"]) and report.count("Merged run:") == 2
    # a merged report merged again names the runs that measured, not the merge
    again = merge_leakage_reports([tmp_path / "merged" / "leakage.json", parts[1]], tmp_path / "again")
    assert [r["command"] for r in again["merged_runs"]] == [whole["command"]] * 3
    other = {**whole, "settings": {**whole["settings"], "train_steps": 7}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(MotionsepError, match="train_steps differ"):
        merge_leakage_reports([parts[0], tmp_path / "other.json"], tmp_path / "never")


def test_leakage_bench_rejects_unknown_names(tmp_path):
    with pytest.raises(MotionsepError, match="did you mean 'orbit'"):
        run_leakage_bench(tmp_path, LeakageSettings(motions=("orbitt",)))
    with pytest.raises(MotionsepError, match="unknown variant"):
        run_leakage_bench(tmp_path, LeakageSettings(variants=("tap + highway",)))


def test_cost_bench_counts_what_is_trained_and_saved(tmp_path):
    from diffusers import UNet3DConditionModel

    from motionsep.models import resolve_model

    settings = CostSettings(
        models=("toy",),
        methods=("motiondirector", "tap"),
        warmup_steps=1,
        toy_steps=1,
        generation_videos=1,
        generation_repeats=1,
    )
    result = run_cost_bench(tmp_path, settings, progress=False)
    rows = {r["method"]: r for r in result["training"]}
    unet = UNet3DConditionModel.from_pretrained(resolve_model("toy"), subfolder="unet")
    for method, row in rows.items():
        targets = lora_targets(unet, resolve_method(method))
        expected = sum(lora_parameter_count(unet, names, settings.rank) for names in targets.values())
        assert row["trainable_parameters"] == expected
        assert row["motion_lora_parameters"] == lora_parameter_count(unet, targets["temporal"], settings.rank)
        assert row["motion_lora_bytes"] >= 4 * row["motion_lora_parameters"]  # fp32 tensors, plus the header
        assert row["seconds_per_step"] > 0 and row["peak_memory_bytes"] > 0
    assert rows["tap"]["ratio_to_motiondirector"]["trainable_parameters"] == round(
        rows["tap"]["trainable_parameters"] / rows["motiondirector"]["trainable_parameters"], 3
    )
    assert rows["motiondirector"]["saved_bytes"] > rows["motiondirector"]["motion_lora_bytes"]  # the spatial LoRA too
    generation = result["generation"]["toy"]["ratio_to_base"]
    assert generation["base"] == 1.0 and set(generation) > {"base"}
    report = (tmp_path / "cost.md").read_text()
    assert "| tap |" in report and "| motiondirector |" in report
    assert json.loads((tmp_path / "cost.json").read_text())["training"] == result["training"]


def test_cost_bench_on_the_embedded_dit_takes_its_ratios_to_full_lora(tmp_path):
    from diffusers import WanTransformer3DModel

    from motionsep.models import resolve_model
    from motionsep.toy.protocol import world_frames

    settings = CostSettings(models=("toy-wan",), warmup_steps=0, toy_steps=1)
    result = run_cost_bench(tmp_path, settings, progress=False)
    rows = {r["method"]: r for r in result["training"]}
    assert set(rows) == {"full-lora", "motiondirector", "temporal-lora", "tap"}
    transformer = WanTransformer3DModel.from_pretrained(resolve_model("toy-wan"), subfolder="transformer")
    for method, row in rows.items():
        targets = lora_targets(transformer, resolve_method(method))
        assert row["trainable_parameters"] == sum(
            lora_parameter_count(transformer, names, settings.rank) for names in targets.values()
        )
        latent_frames = 1 + (world_frames("toy-wan") - 1) // 2  # the causal VAE: 2x in time, 4x in space
        assert row["latents"] == [1, 8, latent_frames, 8, 8]
    assert rows["full-lora"]["ratio_to_full_lora"]["trainable_parameters"] == 1.0
    assert rows["tap"]["ratio_to_full_lora"]["trainable_parameters"] < 0.2
    assert result["generation"] == {}
    # the frozen base stored in float8: its weights take a quarter of fp32's but for the layers kept (norms)
    fp8 = measure_training("toy-wan", "tap", asdict(replace(settings, fp8_base=True)))
    assert fp8["trainable_parameters"] == rows["tap"]["trainable_parameters"]
    assert rows["tap"]["model_bytes"] / 4 <= fp8["model_bytes"] < rows["tap"]["model_bytes"] / 2


def test_weights_fingerprint_follows_the_weights_not_the_folder(pipeline_dirs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from motionsep.models import weights_fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(pipeline_dirs["wan"], copy)
    assert weights_fingerprint(str(copy)) == weights_fingerprint(pipeline_dirs["wan"])
    (weights,) = (copy / "transformer").glob("*.safetensors")
    tensors = load_file(weights)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1e-3  # one tensor retrained a little
    save_file(tensors, weights)
    assert weights_fingerprint(str(copy)) != weights_fingerprint(pipeline_dirs["wan"])
    assert weights_fingerprint("org/some-model") == "org/some-model"


def test_an_unnamed_attribute_every_lora_shows_is_reported_at_its_ceiling():
    from motionsep.bench.report import saturated_attributes

    def row(window: float, size: float) -> dict:
        return {"leakage": {"window": {"share": {"value": window}}, "size": {"share": {"value": size}}}}

    floor = "no LoRA (floor)"
    pooled = {floor: row(0.65, 0.7), "tap": row(1.0, 0.8), "full-lora": row(0.99, 0.6)}
    assert saturated_attributes(pooled, floor) == ["window"]
    assert saturated_attributes({**pooled, "temporal-lora": row(0.9, 1.0)}, floor) == []
    assert saturated_attributes({floor: row(1.0, 1.0)}, floor) == []  # the floor alone is no LoRA


def _row(motion: float, size: float, window: float) -> dict:
    ci = {"ci95": [0.0, 1.0]}
    return {
        "motion_accuracy": {"value": motion, **ci},
        "leakage": {"size": {"rise": {"value": size, **ci}}, "window": {"rise": {"value": window, **ci}}},
    }


def test_the_target_reads_motion_against_the_multi_look_ceiling_and_each_rise_apart():
    from motionsep.bench.leakage import DIT_LEAKAGE_TARGET, MULTI_LOOK_CONTROL
    from motionsep.bench.report import _leakage_target_line

    target = asdict(DIT_LEAKAGE_TARGET)
    pooled = {"full-lora": _row(0.2, 0.2, 0.4), MULTI_LOOK_CONTROL: _row(0.8, 0.0, 0.0), "tap": _row(0.75, 0.1, 0.1)}
    assert "met by tap" in _leakage_target_line(pooled, target)  # 0.94x the ceiling, half the rise or less on each
    low_motion = {**pooled, "tap": _row(0.7, 0.1, 0.1)}  # 0.875x the ceiling, though 3.5x full-lora's motion
    assert "met by" not in _leakage_target_line(low_motion, target)
    # a mean rise of 0.15 would pass against full-lora's 0.3; the window alone does not (0.3 > 0.5 x 0.4)
    one_attribute = {**pooled, "tap": _row(0.8, 0.0, 0.3)}
    assert "met by" not in _leakage_target_line(one_attribute, target)
    # where the baseline falls (no leak), a candidate that does not rise passes, and one that rises does not
    falls = {**pooled, "full-lora": _row(0.2, -0.2, 0.4)}
    assert "met by tap" in _leakage_target_line({**falls, "tap": _row(0.75, 0.0, 0.1)}, target)
    assert "met by" not in _leakage_target_line({**falls, "tap": _row(0.75, 0.05, 0.1)}, target)
    no_ceiling = {k: v for k, v in pooled.items() if k != MULTI_LOOK_CONTROL}  # then the baseline's motion
    assert "of the motion accuracy of full-lora (20%)" in _leakage_target_line(no_ceiling, target)


def test_the_foreign_renderer_draws_a_motion_the_tracker_reads_and_the_world_lacks():
    from motionsep.bench.foreign import CAPTION, figure_eight, path_errors, render_foreign, tracked_path
    from motionsep.toy.world import COLOURS, MOTIONS, vocabulary

    video = render_foreign(17, (16.0, 16.0))
    path = figure_eight(17)
    assert np.abs(tracked_path(video) - path).mean() < 1.0  # the tracker reads the figure-eight
    still = np.repeat(video[:1], 17, axis=0)
    moving, unmoving = path_errors(np.stack([video, still]), path)
    assert moving < 1.0 < unmoving
    assert "eight" not in " ".join(MOTIONS) and "orange" not in COLOURS
    assert not {"moving", "still"} & set(CAPTION.split()) and "gradient" not in vocabulary()


def test_the_recolour_rows_train_their_preset_on_recoloured_copies_of_the_reference(tmp_path):
    from motionsep.config import load_config
    from motionsep.toy.recipes import RECIPES
    from motionsep.toy.reference import AUGMENTED_COPIES, toy_training_config, write_reference_clips

    assert (RECIPES["full-lora-recolour"].method, RECIPES["tap-recolour"].method) == ("full-lora", "tap")
    assert RECIPES["full-lora-recolour"].augment_copies == AUGMENTED_COPIES > 0
    assert RECIPES["full-lora"].augment_copies == 0
    path = write_reference_clips(tmp_path / "zigzag", "zigzag", count=1, steps=3)
    config = toy_training_config(tmp_path / "zigzag" / "clips", tmp_path / "lora", steps=3, augment_copies=3)
    assert config.data.augment_copies == 3 and load_config(path).data.augment_copies == 0


def test_the_swapped_colour_rows_train_on_copies_whose_captions_name_the_new_colour(tmp_path):
    from motionsep.data import augmented, load_clips
    from motionsep.toy.recipes import RECIPES
    from motionsep.toy.reference import toy_training_config, write_reference_clips
    from motionsep.toy.world import COLOURS

    assert {RECIPES[n].augment for n in ("full-lora-swap", "tap-swap", "motiondirector-swap")} == {"swap-colours"}
    assert RECIPES["full-lora-swap-across"].loss == RECIPES["full-lora-across"].loss == "across-frames"
    across = toy_training_config(tmp_path / "x", tmp_path / "l", loss="across-frames")
    assert (
        across.train.loss == "across-frames"
        and toy_training_config(tmp_path / "x", tmp_path / "l").train.loss == "standard"
    )
    write_reference_clips(tmp_path / "zigzag", "zigzag", count=1, steps=3)
    config = toy_training_config(
        tmp_path / "zigzag" / "clips", tmp_path / "l", augment_copies=3, augment="swap-colours"
    )
    assert config.data.colour_words == {w: list(rgb) for w, rgb in COLOURS.items()}
    (clip,) = load_clips(config.data)
    copies = augmented([clip], 3, 0.5, 0, "swap-colours", config.data.colour_words)
    for copy in copies:  # "a red square ..." becomes another of the world's colours, pixels and caption alike
        (word,) = [w for w in COLOURS if w in copy.caption.split()]
        assert word != "red" and copy.caption.replace(word, "red") == clip.caption
        red = np.abs(clip.frames.astype(int) - COLOURS["red"]).sum(-1) < 40  # the square (the clip is an mp4)
        drawn = copy.frames[red].mean(0)
        assert min(COLOURS, key=lambda w: np.abs(drawn - COLOURS[w]).sum()) == word


def test_the_look_variety_diagnostics_vary_only_their_attributes():
    from motionsep.toy.protocol import REFERENCE_LOOK
    from motionsep.toy.reference import many_look_scenes
    from motionsep.toy.world import SHAPES

    shapes = many_look_scenes("orbit", 16, vary=("shape",))
    assert {s.shape for s in shapes} == set(SHAPES) and {s.colour for s in shapes} == {REFERENCE_LOOK["colour"]}
    assert {(s.background, s.size, s.window) for s in shapes} == {
        tuple(REFERENCE_LOOK[a] for a in ("background", "size", "window"))
    }
    colours = many_look_scenes("orbit", 16, vary=("colour", "background"))
    assert {s.shape for s in colours} == {"square"} and len({(s.colour, s.background) for s in colours}) == 16


def test_foreign_clips_train_with_the_recipes_augmentation_and_loss_in_their_own_words(
    toy_like_model, tmp_path, monkeypatch
):
    import motionsep.train
    from motionsep.bench.foreign import CAPTION, COLOUR, PROMPT_LOOKS, run_foreign
    from motionsep.toy.recipes import NEW_LOOKS, RECIPES
    from motionsep.toy.world import BACKGROUNDS, SHAPES

    seen = []

    class Trained(Exception):
        pass

    def record(config, **kwargs):
        seen.append(config)
        raise Trained

    monkeypatch.setattr(motionsep.train, "train", record)
    for name in ("full-lora-swap-across", NEW_LOOKS):
        settings = LeakageSettings(model=toy_like_model, seeds=(0,), sampling_steps=2, train_steps=1, foreign=(name,))
        with pytest.raises(Trained):
            run_foreign(tmp_path, settings, RECIPES, progress=False)
    swapped, new_looks = seen
    assert (swapped.method, swapped.data.augment, swapped.data.augment_copies, swapped.train.loss) == (
        "full-lora",
        "swap-colours",
        RECIPES["full-lora-swap-across"].augment_copies,
        "across-frames",
    )
    assert swapped.data.new_scenes.phrase == ""  # no scenes asked for: none written
    # the new-looks recipe as a user with these clips would write it: their colour, scene and object words
    scenes = new_looks.data.new_scenes
    assert new_looks.data.colour_words["orange"] == list(COLOUR) and "orange" in CAPTION.split()
    assert scenes.phrase in CAPTION and scenes.subject in CAPTION.split()
    assert scenes.prompts == [f"on a {b} background" for b in BACKGROUNDS] and scenes.subjects == list(SHAPES)
    assert scenes.avoid == [list(look) for look in PROMPT_LOOKS]
    assert (new_looks.data.augment_copies, new_looks.train.loss) == (7, "across-frames")


def test_every_variant_keeps_its_own_scores_however_long_its_name():
    from motionsep.bench.leakage import VARIANTS, scored_stem

    stems = [scored_stem(v.name) for v in VARIANTS]
    assert len(set(stems)) == len(stems)  # a resumed bench never reads another variant's scores
    assert scored_stem("full-lora + new scenes (7 copies), across-frames loss + PLI") != scored_stem(
        "full-lora + new scenes (7 copies), across-frames loss"
    )
