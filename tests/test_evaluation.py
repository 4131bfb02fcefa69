"""`motionsep evaluate` with a tiny random CLIP: metrics that must hold whatever the weights."""

from __future__ import annotations

import csv
import json

import pytest

from motionsep.cli import main
from motionsep.errors import MotionsepError
from motionsep.evaluation import evaluate_videos
from motionsep.motion_fidelity import motion_fidelity
from motionsep.toy.world import TIMELINE_ROW, Scene, caption
from motionsep.toy.world import render as render_with_timeline
from motionsep.tracks import point_tracks
from motionsep.video import write_mp4


def render(scene):
    """A shapes-world clip as a plain video: the progress bar's growing end is a motion of its own."""
    video = render_with_timeline(scene)
    video[:, TIMELINE_ROW] = video[:, TIMELINE_ROW - 1]
    return video


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel

    from motionsep.toy.world import vocabulary
    from motionsep.word_tokenizer import build_tokenizer

    folder = tmp_path_factory.mktemp("clip")
    tokenizer = build_tokenizer(vocabulary(), max_length=32)
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 32,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


SCENES = {
    "right.mp4": Scene("circle", "blue", "plain", "right quickly", start=(6.0, 16.0)),
    "left.mp4": Scene("circle", "blue", "plain", "left quickly", start=(26.0, 16.0)),
    "still.mp4": Scene("cross", "yellow", "dots", "still"),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for name, scene in SCENES.items():
        write_mp4(render(scene), folder / name)
    with (folder / "prompts.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "prompt"])
        writer.writerows([(name, caption(scene)) for name, scene in SCENES.items()])
    reference = tmp_path_factory.mktemp("reference")
    write_mp4(render(Scene("square", "red", "checker", "right quickly", start=(8.0, 12.0))), reference / "ref.mp4")
    return folder, reference


def test_motion_fidelity_tells_same_from_opposite_motion():
    right = render(SCENES["right.mp4"])
    reference = render(Scene("square", "red", "checker", "right quickly", start=(8.0, 12.0)))
    assert len(point_tracks(right)) > 0
    same = motion_fidelity(right, reference)
    opposite = motion_fidelity(render(SCENES["left.mp4"]), reference)
    assert same > 0.9 and opposite < 0.5  # best match over all reference tracks, jitter included
    assert motion_fidelity(render(SCENES["still.mp4"]), reference) == 0.0  # nothing moves: nothing matched


def test_evaluate_scores_every_video(tiny_clip, videos, tmp_path, capsys):
    folder, reference = videos
    result = evaluate_videos(
        folder, folder / "prompts.csv", tiny_clip, reference=reference, base_videos=folder, progress=False
    )
    rows = {r["video"]: r for r in result["videos"]}
    assert set(rows) == set(SCENES)
    for row in rows.values():
        assert -1 <= row["clip_text_alignment"] <= 1
        assert row["appearance_leakage"] == 0.0  # the base videos are the same files
    assert rows["still.mp4"]["clip_temporal_consistency"] == pytest.approx(1.0, abs=1e-5)  # identical frames
    assert rows["right.mp4"]["motion_fidelity"] > rows["left.mp4"]["motion_fidelity"]
    assert result["summary"]["motion_fidelity"]["n"] == 3
    code = main(
        [
            "evaluate",
            "--videos",
            str(folder),
            "--prompts",
            str(folder / "prompts.csv"),
            "--clip",
            str(tiny_clip),
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "scores"),
            "--no-progress",
        ]
    )
    assert code == 0 and "motion fid." in capsys.readouterr().out
    saved = json.loads((tmp_path / "scores.json").read_text())
    assert [r["video"] for r in saved["videos"]] == sorted(SCENES)
    with (tmp_path / "scores.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    assert (
        main(
            [
                "evaluate",
                "--videos",
                str(folder),
                "--prompts",
                str(folder / "prompts.csv"),
                "--clip",
                str(tiny_clip),
                "--out",
                str(tmp_path / "scores"),
                "--no-progress",
            ]
        )
        == 2
    )  # results exist: refused


def test_evaluate_bad_input_names_the_problem(tiny_clip, videos, tmp_path):
    folder, _ = videos
    (tmp_path / "few.csv").write_text("video,prompt\nright.mp4,a blue circle\n")
    with pytest.raises(MotionsepError, match=r"no prompt for 'left\.mp4'"):
        evaluate_videos(folder, tmp_path / "few.csv", tiny_clip, progress=False)
    with pytest.raises(MotionsepError, match="not a CLIP model folder"):
        evaluate_videos(folder, folder / "prompts.csv", tmp_path, progress=False)
    (tmp_path / "bad.csv").write_text("file,text\nx,y\n")
    with pytest.raises(MotionsepError, match="video,prompt"):
        evaluate_videos(folder, tmp_path / "bad.csv", tiny_clip, progress=False)


def test_evaluate_reads_generates_own_folder_and_tells_seed_rows_apart(tiny_clip, tmp_path, capsys):
    from motionsep.evaluation import format_table
    from motionsep.generate import MotionPipeline, SamplingSettings, generate_videos

    pipeline = MotionPipeline.from_pretrained("toy")
    prompt = "a blue circle moving right quickly on a plain background with a long caption"
    settings = SamplingSettings(num_frames=8, height=32, width=32, steps=2, guidance=6.0)
    generate_videos(pipeline, [prompt], [0, 1], tmp_path / "out", settings, progress=False)
    assert len(list((tmp_path / "out").glob("*.gif"))) == 2  # generate writes a GIF beside every MP4
    result = evaluate_videos(tmp_path / "out", tmp_path / "out" / "generation.json", tiny_clip, progress=False)
    assert sorted(r["video"] for r in result["videos"]) == sorted(p.name for p in (tmp_path / "out").glob("*.mp4"))
    rows = format_table(result).splitlines()[2:4]
    assert rows[0].split()[0] != rows[1].split()[0] and "seed0.mp4" in rows[0] and "seed1.mp4" in rows[1]
