"""Training recipes of the shapes-world lab, as data: a method preset and what it trains on (fewer clips, clips in
many looks, augmented copies of the one look) and with which loss. The leakage bench trains its rows from this
table and the demo compares two of its entries, so a name means the same training in both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .reference import AUGMENTED_COPIES, NAMED, toy_config_dict
from .world import SIZES


@dataclass(frozen=True)
class Recipe:
    """One LoRA to train: a method preset, optionally other temporal targets, fewer clips, other looks, augmented
    copies or another loss. None in rank and learning rate: the caller's (the bench's budget)."""

    method: str
    targets: tuple[str, ...] | None = None
    clips: int = 4
    rank: int | None = None
    learning_rate: float | None = None
    # the look attributes that differ from clip to clip (toy.reference.many_look_scenes); (): the reference look
    vary: tuple[str, ...] = ()
    augment_copies: int = 0  # augmented copies of every clip (data.augment_copies): many colours from one look
    augment: str = "recolour"  # how the copies differ (data.augment)
    loss: str = "standard"  # train.loss: "across-frames" leaves what every frame shares out of the loss
    object_scale: tuple[float, float] | None = None  # new scenes: data.new_scenes.object_scale
    new_shapes: bool = False  # new scenes: the world's other shapes, drawn by the base model (subject, subjects)
    # the caller's steps times this: a budget row (the bench's "600 steps" rows are twice its default 300; its quick
    # check trains them twice its 20)
    steps_factor: int = 1

    def config_dict(self, data: str | Path, output_dir: str | Path, model: str, *, steps: int, **budget: Any) -> dict:
        """The training config (toy.reference.toy_config_dict) for `data`: the recipe's own settings over the
        caller's `steps` and `budget` (toy_config_dict's learning_rate, rank, batch_size, draw_steps; what is not
        given keeps its default there)."""
        own = {"learning_rate": self.learning_rate, "rank": self.rank}
        return toy_config_dict(
            data,
            output_dir,
            model=model,
            method=self.method,
            steps=self.steps_factor * steps,
            targets=list(self.targets) if self.targets else None,
            augment_copies=self.augment_copies,
            augment=self.augment,
            loss=self.loss,
            object_scale=self.object_scale,
            new_shapes=self.new_shapes,
            **budget | {key: value for key, value in own.items() if value},
        )


MANY_LOOK_CLIPS = 16
# new scenes' object drawn between the world's small and large sizes (its radii 5 and 7 pixels)
WORLD_SIZES = (SIZES["small"] / SIZES["large"], 1.0)
# The best one-look recipe the Wan-world bench measured (docs/benchmarks/toy-wan): full-lora on 7 copies of each
# clip with new scenes, new objects and sizes, and the across-frames loss.
NEW_LOOKS = "full-lora-new-shapes-sized-across-7"


RECIPES = {
    "temporal-lora": Recipe("temporal-lora"),
    "motiondirector": Recipe("motiondirector"),
    "full-lora": Recipe("full-lora"),
    "tap-official": Recipe("tap-official"),
    "tap": Recipe("tap"),
    "tap-heads": Recipe("tap-heads"),
    "tap-offsets": Recipe("tap-offsets"),
    "det": Recipe("det"),
    "tap-k": Recipe("tap", targets=("k",)),
    "tap-k-out": Recipe("tap", targets=("k", "out")),
    "full-lora-1clip": Recipe("full-lora", clips=1),
    "full-lora-recolour": Recipe("full-lora", augment_copies=AUGMENTED_COPIES),
    "tap-recolour": Recipe("tap", augment_copies=AUGMENTED_COPIES),
    "full-lora-swap": Recipe("full-lora", augment_copies=AUGMENTED_COPIES, augment="swap-colours"),
    "tap-swap": Recipe("tap", augment_copies=AUGMENTED_COPIES, augment="swap-colours"),
    "motiondirector-swap": Recipe("motiondirector", augment_copies=AUGMENTED_COPIES, augment="swap-colours"),
    "full-lora-across": Recipe("full-lora", loss="across-frames"),
    "full-lora-swap-across": Recipe(
        "full-lora", augment_copies=AUGMENTED_COPIES, augment="swap-colours", loss="across-frames"
    ),
    "full-lora-scene": Recipe("full-lora", augment_copies=AUGMENTED_COPIES, augment="swap-scene"),
    "full-lora-scene-across": Recipe(
        "full-lora", augment_copies=AUGMENTED_COPIES, augment="swap-scene", loss="across-frames"
    ),
    "full-lora-new-scenes": Recipe("full-lora", augment_copies=AUGMENTED_COPIES, augment="new-scenes"),
    "full-lora-new-scenes-across": Recipe(
        "full-lora", augment_copies=AUGMENTED_COPIES, augment="new-scenes", loss="across-frames"
    ),
    "full-lora-new-scenes-across-7": Recipe("full-lora", augment_copies=7, augment="new-scenes", loss="across-frames"),
    "full-lora-new-scenes-across-15": Recipe(
        "full-lora", augment_copies=15, augment="new-scenes", loss="across-frames"
    ),
    "full-lora-new-scenes-across-7-rank-32": Recipe(
        "full-lora", augment_copies=7, augment="new-scenes", loss="across-frames", rank=32
    ),
    "full-lora-new-scenes-sized-across-7": Recipe(
        "full-lora",
        augment_copies=7,
        augment="new-scenes",
        loss="across-frames",
        object_scale=WORLD_SIZES,
    ),
    "full-lora-new-shapes-across-7": Recipe(
        "full-lora", augment_copies=7, augment="new-scenes", loss="across-frames", new_shapes=True
    ),
    "full-lora-new-shapes-sized-across-7": Recipe(
        "full-lora",
        augment_copies=7,
        augment="new-scenes",
        loss="across-frames",
        object_scale=WORLD_SIZES,
        new_shapes=True,
    ),
    "tap-new-scenes-across": Recipe("tap", augment_copies=AUGMENTED_COPIES, augment="new-scenes", loss="across-frames"),
    "motiondirector-new-scenes-across": Recipe(
        "motiondirector", augment_copies=AUGMENTED_COPIES, augment="new-scenes", loss="across-frames"
    ),
    "full-lora-many-looks": Recipe("full-lora", clips=MANY_LOOK_CLIPS, vary=NAMED),
    # twice the budget, for the control and the best recipe alike: does the ratio between them hold?
    "full-lora-many-looks-600": Recipe("full-lora", clips=MANY_LOOK_CLIPS, vary=NAMED, steps_factor=2),
    "full-lora-new-scenes-across-7-600": Recipe(
        "full-lora", augment_copies=7, augment="new-scenes", loss="across-frames", steps_factor=2
    ),
    "full-lora-many-shapes": Recipe("full-lora", clips=MANY_LOOK_CLIPS, vary=("shape",)),
    "full-lora-many-colours": Recipe("full-lora", clips=MANY_LOOK_CLIPS, vary=("colour", "background")),
    "motiondirector-1clip": Recipe("motiondirector", clips=1),
    "tap-r4": Recipe("tap", rank=4),
    "tap-r64": Recipe("tap", rank=64),
    "tap-r64-lr3e-3": Recipe("tap", rank=64, learning_rate=3e-3),
}
