"""`motionsep bench leakage`: every method on the shapes world, same clips, steps and seeds.

For each held-out motion: render reference clips with one look (REFERENCE_LOOK: every attribute,
named or not, fixed), train every method's LoRA on them with the same budget, generate prompts whose
look differs from the references in every attribute, and read the videos back with the shapes
world's evaluator. Inference-time variants (Appearance Highway, PLI, their sweeps) reuse the LoRA of
the method they modify, so a sweep changes one thing only. The positive control (LoRA on every
layer, one clip, same budget) shows whether leakage is measurable at all in this world.

Work is saved piece by piece under ``<out>/leakage-work``; ``resume=True`` reuses finished pieces
(trained LoRAs, scored variants) of a run with the same settings, so an interrupted run loses nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import HIGHWAY_SCALE, config_from_dict
from ..errors import MotionsepError, closest, refuse_existing
from ..generate import MotionPipeline, slug
from ..models import has_highway, weights_fingerprint
from ..toy.evaluate import evaluate_video
from ..toy.metrics import score
from ..toy.protocol import BENCH_LOOKS, REFERENCE_LOOK, TOY_SAMPLING, world_frames, world_sampling
from ..toy.recipes import MANY_LOOK_CLIPS, RECIPES
from ..toy.reference import NAMED, write_reference_clips
from ..toy.world import HELD_OUT_MOTIONS, Scene, caption
from ..train import train
from ..video import contact_sheet
from .foreign import run_foreign
from .report import FOREIGN_SHEET, machine_line, write_json


@dataclass(frozen=True)
class Variant:
    """A row of the report: a trained LoRA (None: the base model) and how it is sampled."""

    name: str
    training: str | None
    highway: bool = False
    highway_blocks: str = "deepest"
    highway_scale: float = HIGHWAY_SCALE
    pli_tau: int | None = None
    group: str = "methods"
    noise_prior: float = 0.0  # MotionDirector's noise prior from the first reference clip (0: plain noise)


FLOOR = "no LoRA (floor)"
# The ceiling the one-look methods are read against: how much of the motion a LoRA on every layer carries to the
# prompts' looks when its clips show the motion in many looks, so that no look is tied to it.
MULTI_LOOK_CONTROL = f"multi-look control: full-lora, {MANY_LOOK_CLIPS} looks"
VARIANTS = (
    Variant(FLOOR, None),
    Variant("temporal-lora", "temporal-lora"),
    Variant("motiondirector", "motiondirector"),
    Variant("full-lora", "full-lora"),
    Variant("tap-official (release: k+out, AH)", "tap-official", highway=True),
    Variant("tap", "tap"),
    Variant("tap + PLI", "tap", pli_tau=333),
    # the DiT methods (a DiT only: they choose among, or add to, its cross-frame self-attentions)
    Variant("tap-heads", "tap-heads"),
    Variant("tap-offsets", "tap-offsets"),
    Variant("det", "det"),
    Variant("tap + AH", "tap", highway=True),
    Variant("tap + AH + PLI", "tap", highway=True, pli_tau=333),
    # The Appearance Highway on LoRAs that do learn appearance: does rerouting the skips remove it?
    Variant("temporal-lora + AH", "temporal-lora", highway=True),
    Variant("motiondirector + AH", "motiondirector", highway=True),
    Variant("positive control: full-lora, 1 clip", "full-lora-1clip"),  # POSITIVE_CONTROL
    Variant(MULTI_LOOK_CONTROL, "full-lora-many-looks"),
    # appearance augmentation: the one look recoloured (shape, texture and size stay the reference's)
    Variant("full-lora + recolour", "full-lora-recolour", group="augmentation"),
    Variant("tap + recolour", "tap-recolour", group="augmentation"),
    # the caption's colour turned into another of the world's, pixels and words alike (the caption stays true)
    Variant("full-lora + swapped colours", "full-lora-swap", group="augmentation"),
    Variant("tap + swapped colours", "tap-swap", group="augmentation"),
    Variant("motiondirector + swapped colours", "motiondirector-swap", group="augmentation"),
    # the loss on what changes across frames (train.loss: across-frames): the static look gives no gradient
    Variant("full-lora, across-frames loss", "full-lora-across", group="augmentation"),
    Variant("full-lora + swapped colours, across-frames loss", "full-lora-swap-across", group="augmentation"),
    # swapped colours and the rest of the scene recoloured apart (its pattern kept, so the caption stays true)
    Variant("full-lora + swapped scene", "full-lora-scene", group="augmentation"),
    Variant("full-lora + swapped scene, across-frames loss", "full-lora-scene-across", group="augmentation"),
    # swapped colours over scenes the base model draws for the world's other background words (captions true)
    Variant("full-lora + new scenes", "full-lora-new-scenes", group="augmentation"),
    Variant("full-lora + new scenes, across-frames loss", "full-lora-new-scenes-across", group="augmentation"),
    Variant("tap + new scenes, across-frames loss", "tap-new-scenes-across", group="augmentation"),
    # twice the copies: does more scene variety from the one look carry the motion further?
    Variant(
        "full-lora + new scenes (7 copies), across-frames loss", "full-lora-new-scenes-across-7", group="augmentation"
    ),
    Variant(
        "full-lora + new scenes (15 copies), across-frames loss", "full-lora-new-scenes-across-15", group="augmentation"
    ),
    Variant(
        "motiondirector + new scenes, across-frames loss", "motiondirector-new-scenes-across", group="augmentation"
    ),
    # PLI on the best recipe: its LoRA only over the high-noise steps, the base model settling the look after
    Variant(
        "full-lora + new scenes (7 copies), across-frames loss + PLI",
        "full-lora-new-scenes-across-7",
        pli_tau=333,
        group="augmentation",
    ),
    # twice the budget (600 steps) for the control and the best recipe
    Variant("multi-look control, 600 steps", "full-lora-many-looks-600", group="budget"),
    Variant(
        "full-lora + new scenes (7 copies), across-frames loss, 600 steps",
        "full-lora-new-scenes-across-7-600",
        group="budget",
    ),
    # twice the rank: more room for the motion of 32 clips
    Variant(
        "full-lora + new scenes (7 copies), across-frames loss, rank 32",
        "full-lora-new-scenes-across-7-rank-32",
        group="augmentation",
    ),
    # the size rise of the copies above: the object at the world's other sizes as well
    Variant(
        "full-lora + new scenes (7 copies, sizes vary), across-frames loss",
        "full-lora-new-scenes-sized-across-7",
        group="augmentation",
    ),
    # the variety the copies above lack (the look-variety rows: colours and backgrounds alone reach 58%, with shapes
    # too 79%): each copy's object the one the base model draws for another shape word, on the clip's path
    Variant(
        "full-lora + new scenes and shapes (7 copies), across-frames loss",
        "full-lora-new-shapes-across-7",
        group="augmentation",
    ),
    Variant(
        "full-lora + new scenes and shapes (7 copies, sizes vary), across-frames loss",
        "full-lora-new-shapes-sized-across-7",
        group="augmentation",
    ),
    # which variety frees the motion: the multi-look control's clips with one attribute group varied, the rest the
    # reference look (the world's own renderer: a diagnostic of the world, not a method)
    Variant("full-lora, 16 clips, shapes vary", "full-lora-many-shapes", group="look variety"),
    Variant("full-lora, 16 clips, colours and backgrounds vary", "full-lora-many-colours", group="look variety"),
    Variant("tap + AH, all blocks", "tap", highway=True, highway_blocks="all", group="AH blocks"),
    Variant("tap + AH, scale 1.0", "tap", highway=True, highway_scale=1.0, group="AH scale"),
    Variant("tap + AH, scale 1.2", "tap", highway=True, highway_scale=1.2, group="AH scale"),
    Variant("tap + AH + PLI, tau 200", "tap", highway=True, pli_tau=200, group="PLI tau"),
    Variant("tap + AH + PLI, tau 500", "tap", highway=True, pli_tau=500, group="PLI tau"),
    Variant("tap[k] + AH", "tap-k", highway=True, group="TAP targets"),
    Variant("tap[k+out] + AH", "tap-k-out", highway=True, group="TAP targets"),
    Variant("tap, rank 4", "tap-r4", group="TAP rank"),
    Variant("tap, rank 64", "tap-r64", group="TAP rank"),
    Variant("tap, rank 64, lr 3e-3", "tap-r64-lr3e-3", group="TAP rank"),
    # MotionDirector's one-video mode and its noise prior (the inverted reference clip mixed into the noise)
    Variant("motiondirector, 1 clip", "motiondirector-1clip", group="noise prior"),
    Variant("motiondirector, 1 clip, prior 0.1", "motiondirector-1clip", noise_prior=0.1, group="noise prior"),
    Variant("motiondirector, 1 clip, prior 0.3", "motiondirector-1clip", noise_prior=0.3, group="noise prior"),
    Variant("motiondirector, 1 clip, prior 0.5", "motiondirector-1clip", noise_prior=0.5, group="noise prior"),
)
POSITIVE_CONTROL = "positive control: full-lora, 1 clip"
# What runs by default. On the U-Nets: everything above but the DiT rows ("full-lora", "tap + PLI": there the
# baseline is MotionDirector and PLI runs with the highway; the DiT methods, which need a DiT's attentions).
# On a DiT, which has no Appearance Highway (its blocks have no skips): the methods without it, with the LoRA
# its trainers put on every layer as baseline.
DIT_ROWS = ("full-lora", "tap + PLI", "tap-heads", "tap-offsets", "det")
UNET_VARIANTS = tuple(v.name for v in VARIANTS if v.name not in DIT_ROWS)
DIT_VARIANTS = (
    FLOOR,
    "temporal-lora",
    "motiondirector",
    "full-lora",
    "tap",
    "tap + PLI",
    "tap-heads",
    "tap-offsets",
    "det",
    POSITIVE_CONTROL,
    MULTI_LOOK_CONTROL,
)
# The point every sweep is measured against (the sweep groups list only what they change).
SWEEP_CENTRE = {
    "AH blocks": "tap + AH",
    "AH scale": "tap + AH",
    "PLI tau": "tap + AH + PLI",
    "TAP targets": "tap + AH",
    "TAP rank": "tap",
    "noise prior": "motiondirector, 1 clip",
    "augmentation": "full-lora",
    "look variety": MULTI_LOOK_CONTROL,
    "budget": MULTI_LOOK_CONTROL,
}


@dataclass(frozen=True)
class LeakageTarget:
    """What the report checks: one of `candidates` reaches `min_motion_ratio` of the ceiling's motion accuracy
    (the multi-look control's; the baseline's where it was not run) with at most `max_rise_ratio` of the
    baseline's leakage rise on each unnamed attribute (size and window apart: their mean hides opposite moves)."""

    candidates: tuple[str, ...] = ("tap", "tap + AH", "tap + AH + PLI")
    baseline: str = "motiondirector"
    min_motion_ratio: float = 0.9
    max_rise_ratio: float = 0.5
    ceiling: str = MULTI_LOOK_CONTROL


LEAKAGE_TARGET = LeakageTarget()
# On a DiT, the presets and the one-look recipes of appearance augmentation (the issue's "an option any preset can
# use"): each trains on the one look only.
DIT_LEAKAGE_TARGET = LeakageTarget(
    candidates=(
        "tap",
        "tap + PLI",
        "tap-heads",
        "tap-offsets",
        "det",
        "motiondirector",
        "full-lora + new scenes (7 copies), across-frames loss",
        "full-lora + new scenes (7 copies, sizes vary), across-frames loss",
        "full-lora + new scenes and shapes (7 copies), across-frames loss",
        "full-lora + new scenes and shapes (7 copies, sizes vary), across-frames loss",
    ),
    baseline="full-lora",
)


def target_for(model: str) -> LeakageTarget:
    return LEAKAGE_TARGET if has_highway(model) else DIT_LEAKAGE_TARGET


def default_variants(model: str) -> tuple[str, ...]:
    return UNET_VARIANTS if has_highway(model) else DIT_VARIANTS


@dataclass
class LeakageSettings:
    motions: tuple[str, ...] = HELD_OUT_MOTIONS
    prompts: int = 8
    seeds: tuple[int, ...] = (0, 1, 2)
    train_steps: int = 300
    learning_rate: float = 1e-3
    rank: int = 16
    batch_size: int = 4
    sampling_steps: int = TOY_SAMPLING.steps
    guidance: float = TOY_SAMPLING.guidance
    model: str = "toy"
    variants: tuple[str, ...] = ()  # () : the model's default set (default_variants)
    # trained on clips the world's renderer never made (bench/foreign.py), scored by a tracker of their own
    foreign: tuple[str, ...] = ("tap", "motiondirector", "full-lora")

    def budget(self) -> dict:
        """What every recipe trains with unless it says otherwise (toy.recipes.Recipe.config_dict); new scenes are
        drawn with the bench's sampling steps."""
        return {
            "steps": self.train_steps,
            "learning_rate": self.learning_rate,
            "rank": self.rank,
            "batch_size": self.batch_size,
            "draw_steps": self.sampling_steps,
        }

    @classmethod
    def quick(cls) -> LeakageSettings:
        """Checks the machinery, not the conclusions: one motion, 2 prompts, 1 seed, 20 steps."""
        return cls(motions=("zigzag",), prompts=2, seeds=(0,), train_steps=20, sampling_steps=8, foreign=("tap",))

    def check(self) -> None:
        for motion in self.motions:
            if motion not in HELD_OUT_MOTIONS:
                raise MotionsepError(f"unknown held-out motion '{motion}'{closest(motion, HELD_OUT_MOTIONS)}")
        names = {v.name for v in VARIANTS}
        for name in self.variants:
            if name not in names:
                raise MotionsepError(f"unknown variant '{name}'{closest(name, names)}")
        if self.variants and not has_highway(self.model):
            for v in VARIANTS:
                if v.name in self.variants and v.highway:
                    raise MotionsepError(
                        f"variant '{v.name}' uses the Appearance Highway, which a DiT has not (its blocks have no "
                        f"skips); on {self.model} choose among: {', '.join(DIT_VARIANTS)}"
                    )
        for name in self.foreign:
            if name not in RECIPES:
                raise MotionsepError(f"unknown recipe '{name}' for the foreign clips{closest(name, RECIPES)}")
        if not 1 <= self.prompts <= len(BENCH_LOOKS):
            raise MotionsepError(f"prompts must be 1-{len(BENCH_LOOKS)}, got {self.prompts}")
        if not self.learning_rate > 0:
            raise MotionsepError(f"the learning rate must be above 0, got {self.learning_rate}")
        if self.train_steps < 1 or self.sampling_steps < 1 or not self.seeds:
            raise MotionsepError("train_steps and sampling_steps must be at least 1, and seeds not empty")


def bench_prompts(motion: str, count: int) -> list[Scene]:
    return [Scene(shape, colour, background, motion) for shape, colour, background in BENCH_LOOKS[:count]]


def _reference_folder(folder: Path, vary: tuple[str, ...]) -> Path:
    """Where a motion's clips for a training live: the reference look, the many looks, or a diagnostic's."""
    if not vary:
        return folder / "reference"
    return folder / ("reference-many-looks" if set(vary) == set(NAMED) else "reference-" + "-".join(vary))


def _train_one(work: Path, motion: str, name: str, settings: LeakageSettings, progress: bool) -> Path:
    out = work / motion / "loras" / name
    if (out / "motionsep.json").is_file():
        return out  # finished in an earlier (interrupted) run with the same settings
    spec = RECIPES[name]
    clips = _reference_folder(work / motion, spec.vary) / "clips"
    data = clips if spec.clips >= 4 else clips / f"{motion}-0.mp4"
    config = config_from_dict(spec.config_dict(data, out, settings.model, **settings.budget()))
    return train(config, resume=True, progress=progress)  # an interrupted training continues from its checkpoint


def scored_stem(name: str) -> str:
    """A variant's file names in a motion's scored/ folder: its whole name as a slug. (The 48-character slug of
    generated videos made "... across-frames loss + PLI" reuse the scores of "... across-frames loss".)"""
    return slug(name, limit=200)


def _videos(
    pipeline: MotionPipeline, scenes: list[Scene], settings: LeakageSettings, prior: tuple[float, Path] | None = None
) -> np.ndarray:
    sampling = replace(world_sampling(settings.model), steps=settings.sampling_steps, guidance=settings.guidance)
    if prior is not None and prior[0] > 0:
        sampling = replace(sampling, noise_prior=prior[0], prior_clip=str(prior[1]))
    prompts = [caption(s) for s in scenes for _ in settings.seeds]
    seeds = [seed for _ in scenes for seed in settings.seeds]
    return pipeline.videos(prompts, seeds, sampling)


def _predictions(videos: np.ndarray) -> list[dict]:
    return [evaluate_video(v) for v in videos]


def _variant_pipeline(variant: Variant, lora: Path | None, model: str) -> MotionPipeline:
    return MotionPipeline.from_pretrained(
        model,
        lora=None if lora is None else str(lora),
        highway=variant.highway,
        highway_blocks=variant.highway_blocks,
        highway_scale=variant.highway_scale,
        pli_tau=-1 if variant.pli_tau is None else variant.pli_tau,
    )


def run_motion(work: Path, motion: str, settings: LeakageSettings, progress: bool) -> dict[str, dict]:
    """Train, generate and score every selected variant for one motion; each piece saved as it is done."""
    folder = work / motion
    reference = folder / "reference"
    if not (reference / "scenes.json").is_file():
        write_reference_clips(reference, motion, count=4, overwrite=True, model=settings.model)
    chosen = [v for v in VARIANTS if v.name in settings.variants]
    for vary in {RECIPES[v.training].vary for v in chosen if v.training} - {()}:
        many = _reference_folder(folder, vary)
        if not (many / "scenes.json").is_file():
            write_reference_clips(many, motion, MANY_LOOK_CLIPS, overwrite=True, model=settings.model, vary=vary)
    scenes = bench_prompts(motion, settings.prompts)
    prompt_scenes = [s for s in scenes for _ in settings.seeds]
    scored_dir = folder / "scored"
    scored_dir.mkdir(parents=True, exist_ok=True)
    base_file = folder / "base_predictions.json"
    if not base_file.is_file():  # the floor, and the prior every unnamed-attribute rise is measured from
        videos = _videos(MotionPipeline.from_pretrained(settings.model), scenes, settings)
        np.save(scored_dir / f"{scored_stem(FLOOR)}-first.npy", videos[0])
        write_json(base_file, _predictions(videos))
    base = json.loads(base_file.read_text())
    results = {}
    for variant in tqdm(chosen, desc=f"{motion}: variants", disable=not progress):
        done = scored_dir / f"{scored_stem(variant.name)}.json"
        if done.is_file():
            results[variant.name] = json.loads(done.read_text())
            continue
        started = time.time()
        if variant.training is None:
            predictions = base
        else:
            lora = _train_one(work, motion, variant.training, settings, progress)
            prior = (variant.noise_prior, reference / "clips" / f"{motion}-0.mp4")  # the one clip it learned from
            videos = _videos(_variant_pipeline(variant, lora, settings.model), scenes, settings, prior)
            np.save(scored_dir / f"{scored_stem(variant.name)}-first.npy", videos[0])
            predictions = _predictions(videos)
        scored = score(predictions, prompt_scenes, REFERENCE_LOOK, base)
        scored["seconds"] = round(time.time() - started, 1)
        scored["predictions"] = predictions
        write_json(done, scored)
        results[variant.name] = scored
    from ..toy.world import render

    ref_scene = json.loads((reference / "scenes.json").read_text())[0]
    ref_scene["start"] = tuple(ref_scene["start"])
    rows = [(f"reference ({motion})", render(Scene(**ref_scene), world_frames(settings.model)))] + [
        (
            f"{v.name}: {caption(scenes[0])} (seed {settings.seeds[0]})",
            np.load(scored_dir / f"{scored_stem(v.name)}-first.npy"),
        )
        for v in chosen
    ]
    contact_sheet(rows, work.parent / f"leakage-sheet-{motion}.png", cell=72)
    return results


def _model_card(model: str) -> dict | None:
    """How the base model was made and how good it is (the shapes-world model card), if it has one."""
    from ..models import model_card

    return model_card(model) or None


def pool(per_motion: dict[str, dict[str, dict]], settings: LeakageSettings) -> dict[str, dict]:
    """Every variant's generations over all motions, scored together by the one scoring path (toy.metrics.score)."""
    pooled = {}
    for name in settings.variants:
        preds, prompts, base = [], [], []
        for motion, results in per_motion.items():
            preds += results[name]["predictions"]
            prompts += [s for s in bench_prompts(motion, settings.prompts) for _ in settings.seeds]
            base += results[FLOOR]["predictions"]
        pooled[name] = {
            **score(preds, prompts, REFERENCE_LOOK, base),
            "per_motion_accuracy": {m: per_motion[m][name]["motion_accuracy"]["value"] for m in per_motion},
        }
    return pooled


def _per_motion_settings(settings: dict) -> dict:
    """What a motion's saved pieces depend on: everything but the lists of motions and variants (a resume
    may add or drop some; each variant is scored on its own)."""
    return {k: v for k, v in settings.items() if k not in ("motions", "variants")}


def _stamp_settings(work: Path, settings: LeakageSettings, resume: bool) -> dict:
    """The settings a run's pieces depend on, written to `work`; a resume must find the same ones there (the
    model's weights included: a retrained model of the same name must not reuse old pieces)."""
    stamp = work / "settings.json"
    wanted = {**json.loads(json.dumps(asdict(settings))), "model_weights": weights_fingerprint(settings.model)}
    if stamp.is_file() and not resume:
        raise MotionsepError(f"'{work}' holds an earlier run: pass --resume to continue it or remove the folder")
    if stamp.is_file():
        earlier = _per_motion_settings(json.loads(stamp.read_text()))
        if earlier.get("model_weights") != wanted["model_weights"]:
            raise MotionsepError(
                f"cannot resume '{work}': it was run on other weights of '{settings.model}'; remove the folder or "
                "choose another --out"
            )
        if earlier != _per_motion_settings(wanted):
            raise MotionsepError(
                f"cannot resume '{work}': it was run with other settings; remove the folder or choose another --out"
            )
    write_json(stamp, wanted)
    return wanted


def merge_leakage_reports(sources: list[Path], out: Path, overwrite: bool = False, command: str = "") -> dict:
    """One report from runs of the same protocol that chose different variants (leakage.json each): same model
    weights, motions, prompts, seeds and training settings, or a one-line error naming what differs. A variant in
    several runs keeps its first run's numbers; the contact sheets are the first run's."""
    results = []
    for path in sources:
        if not Path(path).is_file():
            raise MotionsepError(f"'{path}' does not exist: give the leakage.json of each run to merge")
        results.append(json.loads(Path(path).read_text()))
    same = [k for k in results[0]["settings"] if k not in ("variants", "foreign")]
    for path, r in zip(sources[1:], results[1:]):
        differs = [k for k in same if r["settings"].get(k) != results[0]["settings"][k]]
        if differs:
            raise MotionsepError(f"'{path}' ran another protocol ({', '.join(differs)} differ): merge like runs only")
    out = Path(out)
    refuse_existing([out / "leakage.json", out / "leakage.md", out / "leakage.png"], overwrite)
    merged = dict(results[0])
    for key in ("pooled", "variants", "foreign"):
        merged[key] = {k: v for r in reversed(results) for k, v in r[key].items()}
    order = [v.name for v in VARIANTS]
    merged["variants"] = dict(sorted(merged["variants"].items(), key=lambda kv: order.index(kv[0])))
    merged["settings"] = results[0]["settings"] | {"variants": list(merged["variants"])}
    merged["target"] = asdict(target_for(merged["settings"]["model"]))  # today's, as a new run would record
    for key in ("wall_seconds", "compute_seconds"):
        merged[key] = round(sum(r[key] for r in results), 1)
    merged["command"] = command or "motionsep bench leakage --merge ..."
    # a merged report brings the runs it was merged from, so the header always names the runs that measured
    merged["merged_runs"] = [
        run
        for r in results
        for run in r.get("merged_runs") or [{"command": r["command"], "date": r["date"], "machine": r["machine"]}]
    ]
    merged["date"] = max(r["date"] for r in results)
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, merged)
    return merged


def run_leakage_bench(
    out: str | Path,
    settings: LeakageSettings | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str = "motionsep bench leakage",
) -> dict:
    """Run (or resume) the benchmark; writes leakage.json, leakage.md, leakage.png and one contact sheet per motion."""
    settings = settings or LeakageSettings()
    settings.check()
    if not settings.variants:
        settings.variants = default_variants(settings.model)
    if FLOOR not in settings.variants:
        settings.variants = (FLOOR, *settings.variants)  # the rise is measured against it
    out = Path(out)
    refuse_existing([out / "leakage.json", out / "leakage.md", out / "leakage.png"], overwrite)
    work = out / "leakage-work"
    wanted = _stamp_settings(work, settings, resume)
    started = time.time()
    per_motion = {}
    for motion in settings.motions:
        per_motion[motion] = run_motion(work, motion, settings, progress)
    pooled = pool(per_motion, settings)
    foreign = run_foreign(work, settings, RECIPES, progress) if settings.foreign else {}
    result = {
        "command": command,
        "base_model": _model_card(settings.model),
        "settings": wanted,
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.time() - started, 1),
        "compute_seconds": round(sum(r["seconds"] for results in per_motion.values() for r in results.values()), 1),
        "variants": {
            v.name: {"group": v.group, "training": v.training, **asdict(v)}
            for v in VARIANTS
            if v.name in settings.variants
        },
        "target": asdict(target_for(settings.model)),
        "pooled": pooled,
        "foreign": foreign,
        "sheets": [str(out / f"leakage-sheet-{m}.png") for m in settings.motions]
        + ([str(out / FOREIGN_SHEET)] if foreign else []),
    }
    write_report(out, result)
    return result


def write_report(out: Path, result: dict) -> None:
    """leakage.json, leakage.png (the methods group) and leakage.md of a run's (or merged runs') result."""
    from .report import leakage_plot, leakage_report

    write_json(out / "leakage.json", result)
    methods = [n for n, v in result["variants"].items() if v["group"] == "methods"]
    leakage_plot(result["pooled"], out / "leakage.png", methods)
    (out / "leakage.md").write_text(leakage_report(result, SWEEP_CENTRE), encoding="utf-8")


def format_leakage_summary(r: dict, out: Path) -> str:
    """What `motionsep bench leakage` prints at the end."""
    motions = len(r["settings"]["motions"])
    return "\n".join(
        [
            f"\nleakage benchmark: {len(r['pooled'])} variants x {motions} motions in {r['wall_seconds'] / 60:.1f} min",
            f"  report  {out / 'leakage.md'}\n  plot    {out / 'leakage.png'}\n  data    {out / 'leakage.json'}",
            "  sheets  " + ", ".join(r["sheets"]),
        ]
    )
