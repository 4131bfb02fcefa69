"""Shapes world: deterministic renders, captions that match the scene, an evaluator that reads them back."""

from __future__ import annotations

import random
import re

import numpy as np

from motionsep.toy.evaluate import MIN_SHAPE_FIT, UNRECOGNISED, evaluate_video, trajectory, trajectory_error
from motionsep.toy.pretrain import clip_batch
from motionsep.toy.world import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_MOTIONS,
    MOTIONS,
    PRETRAIN_MOTIONS,
    SHAPES,
    SIZES,
    TIMELINE_COLOUR,
    TIMELINE_ROW,
    WINDOWS,
    Scene,
    caption,
    frame_rate,
    offsets,
    random_scene,
    render,
    vocabulary,
)


def test_render_is_deterministic_and_scenes_differ():
    scene = random_scene(random.Random(3))
    assert np.array_equal(render(scene), render(scene))
    assert not np.array_equal(render(scene), render(random_scene(random.Random(4))))
    x1, c1 = clip_batch(0, 5, 3)
    x2, c2 = clip_batch(0, 5, 3)
    assert c1 == c2 and bool((x1 == x2).all())


def test_world_is_big_enough():
    assert len(SHAPES) >= 4 and len(COLOURS) >= 5 and len(BACKGROUNDS) >= 4
    assert len(PRETRAIN_MOTIONS) >= 17 and len(HELD_OUT_MOTIONS) >= 3
    assert not set(HELD_OUT_MOTIONS) & set(PRETRAIN_MOTIONS)


def test_captions_name_the_named_attributes_and_never_the_unnamed():
    rng = random.Random(0)
    words = set(vocabulary())
    for _ in range(200):
        scene = random_scene(rng, motions=MOTIONS)
        text = caption(scene, rng)
        assert f"{scene.colour} {scene.shape}" in text
        assert (scene.motion == "still" and "standing still" in text) or scene.motion in text
        assert set(re.findall(r"[a-z]+", text)) <= words
        for unnamed in ("small", "large", "window"):
            assert unnamed not in text
    assert f"on a {scene.background} background" in caption(scene)  # the canonical phrasing names it


def test_held_out_motions_never_in_pretraining_data():
    for step in range(20):
        _, captions = clip_batch(0, step, 8)
        assert not any(m in c for c in captions for m in HELD_OUT_MOTIONS)


def test_scenes_stay_in_frame():
    rng = random.Random(1)
    for motion in MOTIONS:
        for size in SIZES:
            scene = random_scene(rng, motion=motion, size=size)
            pts = offsets(motion) + np.array(scene.start)
            assert pts.min() - SIZES[size] >= 0 and pts.max() + SIZES[size] <= 32


def test_timeline_bar_fills_in_frame_order_the_same_in_every_clip():
    rng = random.Random(5)
    for _ in range(30):  # no scene attribute shows in the bar: the filled part is the same in every clip
        row = render(random_scene(rng, motions=MOTIONS))[:, TIMELINE_ROW]
        filled = (row == TIMELINE_COLOUR).all(-1)
        assert [int(np.flatnonzero(~f)[0]) if (~f).any() else 32 for f in filled] == [4, 8, 12, 16, 20, 24, 28, 32]
    four = render(random_scene(rng), frames=4)[:, TIMELINE_ROW]
    assert [int((f == TIMELINE_COLOUR).all(-1)[:n].all()) for f, n in zip(four, (8, 16, 24, 32))] == [1, 1, 1, 1]


def test_evaluator_reads_fresh_renders():
    rng = random.Random(2026)
    scenes = [random_scene(rng, motions=MOTIONS) for _ in range(60)]
    scenes += [random_scene(rng, motion=m, window=w) for m in HELD_OUT_MOTIONS for w in WINDOWS]
    for scene in scenes:
        video = render(scene)
        predicted = evaluate_video(video)
        assert {k: predicted[k] for k in scene.attributes()} == scene.attributes()
        expected = offsets(scene.motion) + np.array(scene.start)
        assert trajectory_error(trajectory(video), expected) < 0.6


def test_a_first_frame_drawn_unlike_the_rest_is_found_frame_by_frame():
    from dataclasses import replace

    from motionsep.toy.evaluate import frames_as_prompted

    rng = random.Random(7)
    for scene in [random_scene(rng, motions=MOTIONS, size="large") for _ in range(12)]:
        video = render(scene, 17)
        assert frames_as_prompted(video, scene.shape, scene.colour).all()
        other_shape = "cross" if scene.shape != "cross" else "circle"
        other_colour = "blue" if scene.colour != "blue" else "red"
        assert not frames_as_prompted(video, other_shape, scene.colour).any()
        assert not frames_as_prompted(video, scene.shape, other_colour).any()
        for changed in (replace(scene, shape=other_shape), replace(scene, colour=other_colour)):
            first_unlike = video.copy()
            first_unlike[0] = render(changed, 17)[0]  # a blob of another outline, or tinted
            shown = frames_as_prompted(first_unlike, scene.shape, scene.colour)
            assert not shown[0] and shown[1:].all()


def test_a_17_frame_clip_shows_the_9_frame_motion_at_twice_the_frame_rate_and_reads_back():
    rng = random.Random(17)
    for motion in MOTIONS:
        scene = random_scene(rng, motion=motion)
        dense, sparse = render(scene, 17), render(scene, 9)
        assert np.array_equal(dense[::2, :TIMELINE_ROW], sparse[:, :TIMELINE_ROW])  # every other frame: the 9
        assert np.allclose(offsets(motion, 17)[::2], offsets(motion, 9))
        assert evaluate_video(dense)["motion"] == motion
    assert [frame_rate(n) for n in (8, 9, 16, 17, 33)] == [1, 1, 1, 2, 4]


# A square as the 5,500-step base model drew it for "a blue square standing still on a dots background"
# (object pixels of one frame): uneven edges, a bite out of the top and bottom. Extent and solidity,
# the evaluator's first shape descriptors, read it as a circle.
DRAWN_SQUARE = """
..........#..
######...###.
############.
############.
############.
############.
############.
############.
############.
############.
############.
######..###..
####....####.
###......##..
"""


def _silhouette_video(pattern: str, colour: str = "blue") -> np.ndarray:
    video = render(Scene("square", colour, "plain", "still"))
    video[:, :TIMELINE_ROW] = video[0, 2, 2]  # background only
    for y, row in enumerate(pattern.split()):
        for x, pixel in enumerate(row):
            if pixel == "#":
                video[:, 9 + y, 10 + x] = COLOURS[colour]
    return video


def test_evaluator_reads_a_generated_square_with_uneven_edges_as_a_square():
    assert evaluate_video(_silhouette_video(DRAWN_SQUARE))["shape"] == "square"


def test_evaluator_refuses_a_silhouette_that_is_no_shape():
    stroke = "\n".join("." * i + "##" + "." * (13 - i) for i in range(14))  # a diagonal line, 2 px thick
    predicted = evaluate_video(_silhouette_video(stroke))
    assert predicted["shape"] == UNRECOGNISED and predicted["shape_fit"] < MIN_SHAPE_FIT


def test_every_caption_word_is_one_token():
    from motionsep.toy.pretrain import build_models

    tokenizer = build_models(0)[0]
    rng = random.Random(5)
    for _ in range(300):
        text = caption(random_scene(rng, motions=MOTIONS), rng)
        tokens = tokenizer.tokenize(text)
        assert len(tokens) == len(text.replace(",", " ,").split()), tokens
        assert len(tokenizer(text).input_ids) <= tokenizer.model_max_length
