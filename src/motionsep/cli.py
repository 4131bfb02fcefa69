"""The `motionsep` command: a thin layer over the Python API.

Bad input raises MotionsepError, printed here as one line with exit code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

from .errors import MotionsepError, refuse_nonempty


def _quiet_libraries() -> None:
    """diffusers/transformers chatter (deprecation notices, loading bars) would bury our output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not sys.stderr.isatty():  # a log file: a progress line every 30 s, not a redraw every tenth of a second
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*Consider using tensor.detach.*")
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


def _highway_blocks(value: str | None):
    if value is None or value in ("deepest", "all"):
        return value
    try:
        return [int(v) for v in value.split(",")]
    except ValueError:
        raise MotionsepError(
            f"--highway-blocks must be 'deepest', 'all' or comma-separated indices, got '{value}'"
        ) from None


def cmd_train(args) -> None:
    from .config import load_config
    from .train import train

    config = load_config(args.config, args.set or [])
    out = train(config, overwrite=args.overwrite, progress=not args.no_progress, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # several processes (torchrun / accelerate launch): the main one reports
        return
    print(f"motion LoRA: {out}")
    print(f"  weights  {out / 'pytorch_lora_weights.safetensors'}")
    print(f"  metadata {out / 'motionsep.json'}")
    print(f"  loss log {out / 'train_log.csv'}")
    heads = json.loads((out / "motionsep.json").read_text(encoding="utf-8")).get("heads")
    if heads:  # a method confined to temporal heads: which ones the reference clips chose
        print("  heads    " + "; ".join(f"{name} {chosen}" for name, chosen in heads.items()))
    print(f'next: motionsep generate --model {config.model} --lora {out} --prompt "..."')


def cmd_generate(args) -> None:
    from .generate import MotionPipeline, SamplingSettings, generate_videos

    highway = None if args.highway is None else args.highway == "on"
    pipeline = MotionPipeline.from_pretrained(
        args.model,
        lora=args.lora,
        motion_adapter=args.motion_adapter,
        highway=highway,
        highway_blocks=_highway_blocks(args.highway_blocks),
        highway_scale=args.highway_scale,
        pli_tau=args.pli_tau,
        lora_scale=args.lora_scale,
        fuse_lora=args.fuse_lora,
        device=args.device or ("cuda" if _cuda() else "cpu"),
    )
    settings = SamplingSettings(
        num_frames=args.frames,
        height=args.height,
        width=args.width,
        steps=args.steps,
        guidance=args.guidance,
        negative_prompt=args.negative_prompt,
        fps=args.fps,
        noise_prior=args.noise_prior,
        prior_clip=args.prior_clip,
        image=args.image,
    )
    records = generate_videos(
        pipeline, args.prompt, args.seed or [0], args.out, settings, args.overwrite, not args.no_progress
    )
    for record in records:
        print(record["mp4"])
        print(record["gif"])
    print(f"contact sheet: {os.path.join(args.out, 'contact_sheet.png')}")


def cmd_inspect(args) -> None:
    from .inspection import format_report, inspect_model
    from .memory import MemoryPlan

    targets = args.targets.split(",") if args.targets else None
    if (args.frames is None) != (args.size is None):
        raise MotionsepError("--frames and --size go together: give both for a memory prediction, or neither")
    clip = (args.frames, tuple(args.size)) if args.frames is not None else None
    plan = MemoryPlan(args.precision, args.fp8_base, args.gradient_checkpointing, args.fp8_text_encoder)
    report = inspect_model(
        args.model, args.method, targets, args.rank, _highway_blocks(args.highway_blocks) or "deepest", clip, plan
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))


def cmd_demo(args) -> None:
    from .demo import DEMO_MODEL, format_demo, run_demo

    r = run_demo(
        args.out,
        args.motion,
        tuple(args.method) if args.method else None,
        args.model or DEMO_MODEL,
        args.steps,
        tuple(args.seed or (0, 1)),
        args.overwrite,
        not args.no_progress,
    )
    print(format_demo(r))


def cmd_toy_render(args) -> None:
    from .toy.reference import write_reference_clips

    config = write_reference_clips(args.out, args.motion, args.clips, args.seed, args.steps, args.overwrite, args.model)
    print(f"reference clips: {config.parent / 'clips'}")
    print(f"config:          {config}")
    print(f"next: motionsep train {config}")


def cmd_toy_validate(args) -> None:
    from .toy.validate import validate_evaluator

    report = validate_evaluator(args.n, args.seed)
    print(json.dumps(report, indent=2))


def cmd_toy_pretrain(args) -> None:
    if args.device != "cpu" and args.family != "wan":
        raise MotionsepError(f"--device {args.device} is for --family wan; the other families pretrain on the CPU")
    wan_only = [
        flag
        for flag, value in (("--init-from", args.init_from), ("--batch", args.batch), ("--vae-lr", args.vae_lr))
        if value is not None
    ]
    if wan_only and args.family != "wan":
        raise MotionsepError(f"{wan_only[0]} is for --family wan")
    if args.cooldown_steps is not None and args.family != "wan":
        raise MotionsepError("--cooldown-steps is for --family wan; the other families train at a constant rate")
    if args.family == "animatediff":
        from .toy.pretrain_animatediff import AnimateDiffPretrainConfig, pretrain_animatediff

        ad_config = AnimateDiffPretrainConfig(out=args.out or AnimateDiffPretrainConfig.out, seed=args.seed)
        if args.steps is not None:
            ad_config.denoiser_steps = args.steps
        folder = pretrain_animatediff(ad_config)
    elif args.family == "wan":
        from .toy.pretrain_wan import WanPretrainConfig, pretrain_wan

        wan_config = WanPretrainConfig(out=args.out or WanPretrainConfig.out, seed=args.seed)
        if args.steps is not None:
            wan_config.denoiser_steps = args.steps
        if args.vae_steps is not None:
            wan_config.vae_steps = args.vae_steps
        wan_config.device = args.device
        wan_config.cooldown_steps = args.cooldown_steps
        _wan_warm_start_options(wan_config, args)
        if args.cooldown_steps is not None and not 0 <= args.cooldown_steps < wan_config.denoiser_steps:
            raise MotionsepError(
                f"--cooldown-steps {args.cooldown_steps}: give 0 or more, fewer than the {wan_config.denoiser_steps} "
                "transformer steps in all"
            )
        folder = pretrain_wan(wan_config)
    else:
        from .toy.pretrain import PretrainConfig, pretrain

        config = PretrainConfig(
            out=args.out or "toy-pretrain",
            vae_steps=PretrainConfig.vae_steps if args.vae_steps is None else args.vae_steps,
            seed=args.seed,
            base=args.base,
            temporal_convs=not args.no_temporal_convs,
            temporal_conv_penalty=args.temporal_conv_penalty,
            narrow_steps=0 if args.base else PretrainConfig.narrow_steps,  # a base model already reads motion words
        )
        if args.steps is not None:
            config.denoiser_steps = args.steps
        folder = pretrain(config)
    print(f"pipeline: {folder}")


def _wan_warm_start_options(config, args) -> None:
    """--init-from, --batch and --vae-lr of a Wan-family run; a warm start needs no one-look curriculum."""
    if args.batch is not None:
        if args.batch < 1:
            raise MotionsepError(f"--batch {args.batch}: give 1 or more clips a step")
        config.denoiser_batch = args.batch
    if args.vae_lr is not None:
        if not args.vae_lr > 0:
            raise MotionsepError(f"--vae-lr {args.vae_lr}: give a positive learning rate, e.g. 3e-4")
        config.vae_lr = args.vae_lr
    if args.init_from:
        from .models import family_of_model

        if family_of_model(args.init_from).name != "wan":
            raise MotionsepError(f"--init-from {args.init_from}: give a Wan-family world model, e.g. toy-wan")
        config.init_from = args.init_from
        config.narrow_steps = 0  # it reads motion words already


def cmd_toy_export(args) -> None:
    from .toy.pretrain import export_from_run
    from .toy.pretrain_animatediff import export_animatediff, is_animatediff_run
    from .toy.pretrain_wan import export_wan, is_wan_run

    if not (Path(args.run) / "state.json").is_file():
        raise MotionsepError(f"'{args.run}' is not a pretraining run: give the --out of `motionsep toy pretrain`")
    if not args.overwrite:
        refuse_nonempty(args.to, "choose another --to or pass --overwrite")
    quality, probe = (_json_report(path, flag) for path, flag in ((args.quality, "--quality"), (args.probe, "--probe")))
    if is_animatediff_run(args.run):
        folder = export_animatediff(args.run, args.to, quality, probe, ema=not args.raw_weights)
    elif is_wan_run(args.run):
        folder = export_wan(args.run, args.to, quality, probe, ema=not args.raw_weights)
    else:
        folder = export_from_run(args.run, args.to, quality, ema=not args.raw_weights, probe=probe)
    print(f"exported: {folder}")


def _json_report(path: str | None, flag: str) -> dict | None:
    """A JSON report named by `flag`, read for a model card (None when the flag was not given)."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MotionsepError(f"{flag} '{path}' is not a readable JSON report ({exc}): give the file it wrote") from None


def cmd_toy_quality(args) -> None:
    from .toy.quality import base_model_quality

    if args.out:
        from .errors import refuse_existing

        refuse_existing([Path(args.out)], args.overwrite)
    report = base_model_quality(args.model, args.n, args.seed, progress=not args.no_progress)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


def _with_flags(settings: Any, **flags: Any) -> Any:
    """The settings dataclass with every flag the user gave (None: not given, the settings' value stays)."""
    from dataclasses import replace

    return replace(settings, **{k: v for k, v in flags.items() if v is not None})


def _command_line(*words: str) -> str:
    """The command as typed, for the reports (the words alone when called from Python)."""
    given = sys.argv[1 : 1 + len(words)] == list(words)
    return shlex.join(["motionsep", *words, *(sys.argv[1 + len(words) :] if given else [])])


def cmd_bench_leakage(args) -> None:

    from .bench.leakage import LeakageSettings, format_leakage_summary, merge_leakage_reports, run_leakage_bench

    if args.merge:
        command = _command_line("bench", args.bench_command)
        merged = merge_leakage_reports([Path(m) for m in args.merge], Path(args.out), args.overwrite, command)
        print(format_leakage_summary(merged, Path(args.out)))
        return
    settings = _with_flags(
        LeakageSettings.quick() if args.quick else LeakageSettings(),
        motions=tuple(args.motion or ()) or None,
        train_steps=args.steps,
        learning_rate=args.lr,
        variants=tuple(args.variant or ()) or None,
        model=args.model,
        foreign=None if not args.foreign else tuple(n for n in args.foreign if n != "none"),
    )
    r = run_leakage_bench(
        args.out,
        settings,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=_command_line("bench", args.bench_command),
    )
    print(format_leakage_summary(r, Path(args.out)))


def cmd_bench_cost(args) -> None:

    from .bench.cost import CostSettings, format_cost_summary, run_cost_bench

    settings = _with_flags(
        CostSettings.quick() if args.quick else CostSettings(),
        device="cuda" if args.cuda else None,
        dtype=args.dtype or ("float16" if args.cuda else None),
        gradient_checkpointing=True if (args.cuda or args.gradient_checkpointing) else None,
        models=tuple(args.model) if args.model else None,
        zeroscope_latent=args.zeroscope_latent,
        frames=args.frames,
        wan_size=tuple(args.wan_size) if args.wan_size else None,
        wan_frames=args.wan_frames,
        fp8_base=True if args.fp8_base else None,
    )
    r = run_cost_bench(
        args.out,
        settings,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=_command_line("bench", args.bench_command),
    )
    print(format_cost_summary(r, Path(args.out)))


def cmd_evaluate(args) -> None:
    from .errors import refuse_existing
    from .evaluation import evaluate_videos, format_table, write_results

    out = Path(args.out)
    refuse_existing([out.with_suffix(".json"), out.with_suffix(".csv")], args.overwrite)
    result = evaluate_videos(
        args.videos, args.prompts, args.clip, args.reference, args.base_videos, progress=not args.no_progress
    )
    print(format_table(result))
    json_path, csv_path = write_results(result, out)
    print(f"results: {json_path} and {csv_path}")


def cmd_probe(args) -> None:
    from .models import EMBEDDED_MODELS, load_denoiser_config, resolve_model
    from .probe import ProbeSettings, format_probe, probe_denoiser_config, probe_model

    settings = ProbeSettings(generations=args.generations, clips=args.clips_count, progress=not args.no_progress)
    if args.model in EMBEDDED_MODELS or args.shapes_world:
        if args.clips:
            raise MotionsepError(
                "--clips is for models of your own; on a shapes-world model the probe renders its clips"
            )
        from .toy.probing import probe_world_model

        report = probe_world_model(args.model, settings)
    elif resolve_model(args.model).endswith(".json"):  # a UNet config: the architecture alone
        report = probe_denoiser_config(load_denoiser_config(args.model), progress=settings.progress)
    else:
        size = tuple(args.size) if args.size else None
        report = probe_model(args.model, args.clips, args.caption, args.frames, size, settings)
    if args.out:
        from .errors import refuse_existing

        refuse_existing([Path(args.out)], args.overwrite)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2) if args.json else format_probe(report))


# --- flags shared by several commands, defined once ------------------------------------------------

MODEL_HELP = (
    "diffusers pipeline folder (ModelScope/ZeroScope, AnimateDiff or Wan), hub id, 'toy', 'toy-animatediff' "
    "or 'toy-wan'"
)


def _no_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _overwrite(p: argparse.ArgumentParser, what: str = "results already in --out") -> None:
    p.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def _out(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("--out", default=default, help=what + (f" (default {default})" if default else ""))


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="motionsep",
        description="Learn a motion from reference clips and generate it with any appearance, without the "
        "reference's look leaking in (TAP, Appearance Highway, Phased LoRA Integration).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _generate_parser(sub)
    _demo_parser(sub)
    _toy_parser(sub)
    _evaluate_parser(sub)
    _bench_parser(sub)
    _probe_parser(sub)
    _inspect_parser(sub)
    _export_parser(sub)
    _ui_parser(sub)
    return parser


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a motion LoRA from a YAML config",
        description="Train a motion LoRA. See docs/usage.md's config reference.",
    )
    p.add_argument("config", help="YAML training config")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.steps=200 (repeatable)",
    )
    _overwrite(p, "results already in output_dir")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    _no_progress(p)
    p.set_defaults(func=cmd_train)


def _generate_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate videos, with or without a motion LoRA",
        description="Generate an MP4 and a GIF per prompt and seed, plus a contact sheet.",
    )
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument(
        "--lora",
        action="append",
        help="LoRA folder or file, optionally PATH:WEIGHT; repeat to mix: motion LoRAs written by `motionsep train` "
        "mix by weight, a diffusers-format LoRA of another trainer stacks as appearance (omit for the base model)",
    )
    p.add_argument("--motion-adapter", help="AnimateDiff: MotionAdapter folder when --model is an SD1.5 pipeline")
    p.add_argument("--prompt", action="append", required=True, help="text prompt (repeatable)")
    p.add_argument("--seed", action="append", type=int, help="random seed (repeatable; default 0)")
    p.add_argument("--frames", type=int, help="number of frames (default: the LoRA's training length, else 16)")
    p.add_argument("--height", type=int, help="frame height in pixels (default: the LoRA's training size)")
    p.add_argument("--width", type=int, help="frame width in pixels")
    p.add_argument("--steps", type=int, default=30, help="denoising steps (default 30)")
    p.add_argument("--guidance", type=float, default=12.0, help="classifier-free guidance scale (default 12)")
    p.add_argument("--lora-scale", type=float, default=1.0, help="strength of the motion LoRA (default 1)")
    p.add_argument(
        "--fuse-lora",
        action="store_true",
        help="fold the LoRA into the weights: no LoRA matmuls at sampling (PLI swaps weights, exactly)",
    )
    p.add_argument("--negative-prompt", help="negative prompt")
    p.add_argument(
        "--highway",
        choices=["on", "off"],
        help="Appearance Highway (default: as the LoRA was saved; off without a LoRA)",
    )
    p.add_argument("--highway-blocks", help="'deepest', 'all' or comma-separated down-block indices")
    p.add_argument("--highway-scale", type=float, help="scale beta on the highway skips (release: 1.1)")
    p.add_argument(
        "--pli-tau",
        type=int,
        help="Phased LoRA Integration: LoRA only for timesteps t > tau (release: 333; -1 turns it off)",
    )
    p.add_argument("--fps", type=int, default=8, help="frames per second of the MP4/GIF (default 8)")
    p.add_argument(
        "--noise-prior",
        type=float,
        default=0.0,
        help="MotionDirector's noise prior P in [0, 1]: start from sqrt(P) x the inverted --prior-clip + sqrt(1-P) x "
        "noise (default 0: off)",
    )
    p.add_argument("--prior-clip", help="the reference clip whose inversion the noise prior mixes in")
    p.add_argument(
        "--image",
        metavar="START.png",
        help="an image-to-video model's first frame (Wan I2V): the motion LoRA moves it; refused by text-to-video",
    )
    # resolved when the command runs: asking torch here would import it for `--help` (seconds, for a help text)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    _out(p, "outputs", "output folder")
    _overwrite(p, "videos already in --out")
    _no_progress(p)
    p.set_defaults(func=cmd_generate)


def _demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded shapes-world model, scored",
        description="Render reference clips of a held-out motion, train a motion LoRA on the embedded model, "
        "generate it with new appearances, and measure motion, appearance and leakage.",
    )
    _out(p, "motionsep-demo", "output folder")
    p.add_argument("--motion", default="zigzag", help="held-out motion: zigzag (default), orbit, bounce or spiral")
    p.add_argument(
        "--method",
        action="append",
        help="method preset or a recipe of the leakage bench (a preset on augmented copies of the clips, another "
        "loss; docs/shapes-world.md lists them), repeatable (default: tap, with the Appearance Highway, and "
        "motiondirector; on toy-wan, a DiT: full-lora-new-shapes-sized-across-7, the best measured one-look recipe, "
        "and full-lora)",
    )
    p.add_argument(
        "--model",
        help="base model: toy, toy-animatediff or toy-wan (default: the one where the leakage benchmark says TAP "
        "has a lever)",
    )
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--seed", action="append", type=int, help="generation seed (repeatable; default 0 and 1)")
    _overwrite(p, "an earlier demo in --out")
    _no_progress(p)
    p.set_defaults(func=cmd_demo)


def _toy_parser(sub) -> None:
    toy = sub.add_parser("toy", help="the shapes world: reference clips, evaluator check, pretraining").add_subparsers(
        dest="toy_command", required=True
    )
    p = toy.add_parser("render", help="reference clips of one motion with one appearance, and a ready config")
    p.add_argument("--motion", default="zigzag", help="motion to render (default zigzag, a held-out motion)")
    p.add_argument("--clips", type=int, default=4, help="number of clips (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the renders (default 0)")
    p.add_argument("--steps", type=int, default=300, help="training steps written into the config (default 300)")
    p.add_argument(
        "--model", default="toy", help="model written into the config: toy (default), toy-animatediff or toy-wan"
    )
    _out(p, "toy-reference", "output folder")
    _overwrite(p)
    p.set_defaults(func=cmd_toy_render)
    p = toy.add_parser("validate", help="evaluator accuracy on fresh renders of every attribute value and motion")
    p.add_argument("--n", type=int, default=20, help="renders per motion (default 20)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the renders (default 12345)")
    p.set_defaults(func=cmd_toy_validate)
    _toy_pretrain_parser(toy)
    _toy_export_and_quality_parsers(toy)


def _toy_pretrain_parser(toy) -> None:
    p = toy.add_parser(
        "pretrain",
        help="train a shapes-world base model (resumes from --out)",
        description="modelscope: VAE, UNet3D and text encoder from scratch. animatediff: motion modules "
        "on the embedded model's spatial weights, then both (toy/pretrain_animatediff.py). wan: causal video VAE, "
        "then WanTransformer3DModel and UMT5 text encoder from scratch, flow matching (toy/pretrain_wan.py).",
    )
    p.add_argument(
        "--family",
        choices=("modelscope", "animatediff", "wan"),
        default="modelscope",
        help="which embedded model (default modelscope)",
    )
    p.add_argument(
        "--out",
        help="run folder; an existing one is resumed (default toy-pretrain, toy-pretrain-animatediff or "
        "toy-pretrain-wan)",
    )
    p.add_argument(
        "--steps", type=int, help="UNet (wan: transformer) steps in all (default 16000; animatediff 2500; wan 25000)"
    )
    p.add_argument("--vae-steps", type=int, help="VAE steps (default 6000)")
    p.add_argument(
        "--device",
        default="cpu",
        help="wan: train on this torch device, e.g. cuda (data and noise are drawn on the CPU as always, so a run "
        "can move between machines and resume); default cpu",
    )
    p.add_argument(
        "--cooldown-steps",
        type=int,
        help="wan: the learning rate falls linearly to zero over the last N transformer steps (0: constant; "
        "default: the last fifth of --steps); give the same on every resume",
    )
    p.add_argument(
        "--init-from",
        help="wan: start from this Wan-family world model (e.g. toy-wan): its VAE fine-tunes to the clip length, "
        "its text encoder and transformer blocks continue (a patch size of its own is converted)",
    )
    p.add_argument("--batch", type=int, help="wan: clips per transformer step (default 16)")
    p.add_argument("--vae-lr", type=float, help="wan: the VAE stage's learning rate (default 1e-3; 3e-4 to fine-tune)")
    p.add_argument("--base", help="modelscope: start from this model's weights (e.g. toy) and keep its VAE")
    p.add_argument(
        "--no-temporal-convs",
        action="store_true",
        help="modelscope: hold every temporal convolution at identity, so temporal attention carries the motion",
    )
    p.add_argument(
        "--temporal-conv-penalty",
        type=float,
        default=0.0,
        help="modelscope: weight of a penalty on the temporal convolutions' residuals, which leaves the motion "
        "to temporal attention while the convolutions still tell the frames apart (default 0: off)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, data and noise (default 0)")
    p.set_defaults(func=cmd_toy_pretrain)


def _toy_export_and_quality_parsers(toy) -> None:
    p = toy.add_parser("export", help="ship the newest checkpoint of a pretraining run as a pipeline folder")
    p.add_argument("--run", default="toy-pretrain", help="pretraining run folder")
    p.add_argument("--to", required=True, help="destination pipeline folder")
    p.add_argument("--quality", help="a `toy quality --out` report to record in the model card")
    p.add_argument("--probe", help="a `probe --json` report to record in the model card")
    p.add_argument(
        "--raw-weights", action="store_true", help="the last optimizer step's weights instead of their moving average"
    )
    _overwrite(p, "a model already in --to")
    p.set_defaults(func=cmd_toy_export)
    p = toy.add_parser("quality", help="base-model quality: attribute accuracy on generations from random prompts")
    p.add_argument(
        "--model", default="toy", help="shapes-world model: toy (default), toy-animatediff, toy-wan or its folder"
    )
    p.add_argument("--n", type=int, default=200, help="generations (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random prompts and noise (default 0)")
    _out(p, None, "also write the JSON report here")
    _no_progress(p)
    _overwrite(p, "--out if it exists")
    p.set_defaults(func=cmd_toy_quality)


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="CLIP text alignment, temporal consistency, leakage and motion fidelity of any videos",
        description="Score generated videos: CLIP text alignment and temporal consistency; with --reference, "
        "similarity "
        "to the reference clips and DMT-style motion fidelity from OpenCV point tracks; with --base-videos (same "
        "prompts "
        "and seeds, same file names), appearance leakage = reference similarity minus the base model's.",
    )
    p.add_argument("--videos", required=True, help="folder of generated videos")
    p.add_argument(
        "--prompts", required=True, help="generation.json from `motionsep generate`, or a CSV with columns video,prompt"
    )
    p.add_argument(
        "--clip",
        required=True,
        help="local transformers CLIP folder; nothing is downloaded: on a machine with internet `huggingface-cli "
        "download openai/clip-vit-large-patch14 --local-dir clip-vit-large-patch14`, then copy the folder here",
    )
    p.add_argument("--reference", help="folder of reference clips (enables reference similarity and motion fidelity)")
    p.add_argument("--base-videos", help="base-model videos of the same prompts and seeds (enables appearance leakage)")
    _out(p, "evaluation", "writes OUT.json and OUT.csv")
    _overwrite(p)
    _no_progress(p)
    p.set_defaults(func=cmd_evaluate)


def _bench_parser(sub) -> None:
    bench = sub.add_parser("bench", help="benchmarks: leakage and cost of every method").add_subparsers(
        dest="bench_command", required=True
    )
    _bench_leakage_parser(bench)
    _bench_cost_parser(bench)


def _bench_leakage_parser(bench) -> None:
    p = bench.add_parser(
        "leakage",
        help="every method on the shapes world: motion, appearance and leakage with 95%% CIs",
        description="Train every method on reference clips of each held-out motion (same steps and seeds), generate "
        "prompts "
        "that differ from the references in every attribute, and report motion accuracy, trajectory error, appearance "
        "accuracy and leakage per attribute, plus sweeps of AH blocks, AH scale, PLI tau and TAP targets.",
    )
    _out(p, "bench-results", "writes leakage.md, leakage.png, leakage.json; work in OUT/leakage-work")
    p.add_argument("--quick", action="store_true", help="a few minutes: checks the machinery, not the conclusions")
    p.add_argument("--motion", action="append", help="held-out motion (repeatable; default all four)")
    p.add_argument("--variant", action="append", help="run only this variant (repeatable; the floor always runs)")
    p.add_argument(
        "--foreign",
        action="append",
        help="train this preset on the foreign clips (another renderer, a figure-eight; repeatable; default tap, "
        "motiondirector and full-lora; 'none' skips them)",
    )
    p.add_argument("--steps", type=int, help="training steps per LoRA (default 300; --quick 20)")
    p.add_argument("--lr", type=float, help="learning rate of every LoRA (default 1e-3)")
    p.add_argument("--model", help="base model (default: the embedded shapes-world model)")
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted run in --out, reusing its finished pieces"
    )
    p.add_argument(
        "--merge",
        action="append",
        metavar="JSON",
        help="run nothing: one report in --out from the leakage.json of runs of the same protocol that chose "
        "different variants (repeatable)",
    )
    _overwrite(p, "an earlier report in --out")
    _no_progress(p)
    p.set_defaults(func=cmd_bench_leakage)


def _bench_cost_parser(bench) -> None:
    p = bench.add_parser(
        "cost",
        help="trainable parameters, LoRA size, s/step, peak memory and generation time per method",
        description="Per method: trainable parameters, LoRA file size, training seconds per step and peak memory, "
        "each also "
        "as a ratio to motiondirector; on the embedded model and on the ZeroScope UNet architecture (random weights). "
        "Plus generation time with LoRA + Appearance Highway + PLI against the plain base pipeline.",
    )
    _out(p, "bench-results", "writes cost.md and cost.json")
    p.add_argument("--quick", action="store_true", help="embedded model only, few steps: checks the machinery")
    p.add_argument(
        "--model",
        action="append",
        choices=("toy", "zeroscope", "toy-wan", "wan-1.3b"),
        help="repeatable (default toy and zeroscope); toy-wan: the embedded Wan-family model; wan-1.3b: the Wan 2.1 "
        "1.3B DiT (random weights); on the DiTs the ratios are to full-lora",
    )
    p.add_argument("--cuda", action="store_true", help="measure on the GPU (fp16 base weights, gradient checkpointing)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float16", "bfloat16"),
        help="base weights' dtype (default float32; --cuda float16)",
    )
    p.add_argument(
        "--zeroscope-latent", type=int, help="latent side for the ZeroScope UNet (default 8 = 64x64 px; 48 = 384x384)"
    )
    p.add_argument("--frames", type=int, help="frames per clip (default 8)")
    p.add_argument(
        "--wan-size", type=int, nargs=2, metavar=("H", "W"), help="wan-1.3b clip size in pixels (default 64 112)"
    )
    p.add_argument("--wan-frames", type=int, help="wan-1.3b clip frames, 1 + 4k (default 9; the real size: 33)")
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="measure with gradient checkpointing (activations recomputed in the backward pass; on with --cuda)",
    )
    p.add_argument(
        "--fp8-base", action="store_true", help="the frozen base stored in float8, computed at --dtype (train.memory)"
    )
    _overwrite(p, "an earlier report in --out")
    _no_progress(p)
    p.set_defaults(func=cmd_bench_cost)


def _probe_parser(sub) -> None:
    p = sub.add_parser(
        "probe",
        help="where does this model's motion live? each temporal pathway switched off, measured",
        description="Switch off each temporal pathway of the model (forward hooks) and measure how much of its "
        "motion remains: by the model's own cross-frame prediction skill on clips (any model), and on "
        "shapes-world models also by the evaluator's motion accuracy. TAP has a lever where switching "
        "temporal attention off loses most of the motion.",
    )
    p.add_argument(
        "--model",
        required=True,
        help=MODEL_HELP
        + ", or a UNet/transformer config.json or shipped config such as zeroscope-config (random weights)",
    )
    p.add_argument("--clips", help="a video or a folder of clips of your own (default: the model generates its own)")
    p.add_argument("--caption", help="caption for every clip (default: a same-name .txt beside each clip, else none)")
    p.add_argument(
        "--frames", type=int, default=16, help="frames per clip (default 16; Wan takes 1 + 4k, rounded down)"
    )
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="clip size (default the model's native size)")
    p.add_argument("--clips-count", type=int, default=8, help="clips for the model measure (default 8)")
    p.add_argument("--generations", type=int, default=24, help="shapes world: generations per setting (default 24)")
    p.add_argument(
        "--shapes-world", action="store_true", help="the model is a shapes-world model of your own: use the evaluator"
    )
    _json(p)
    _out(p, None, "also write the JSON report here")
    _overwrite(p, "--out if it exists")
    _no_progress(p)
    p.set_defaults(func=cmd_probe)


def _inspect_parser(sub) -> None:
    p = sub.add_parser(
        "inspect",
        help="list LoRA targets and highway hook points (reads configs only)",
        description="List every LoRA layer and Appearance Highway hook point a method would use, from the denoiser's "
        "config alone (UNet or DiT; no weights are read).",
    )
    p.add_argument(
        "--model",
        required=True,
        help=MODEL_HELP + ", a UNet or transformer folder, its config.json, or a shipped config: zeroscope-config, "
        "wan-1.3b-config, wan-14b-config, wan2.2-a14b-config, wan2.2-ti2v-5b-config, wan-i2v-14b-config, "
        "wan2.2-i2v-a14b-config, cogvideox-2b-config, cogvideox-5b-config",
    )
    p.add_argument(
        "--method",
        default="auto",
        help="a preset: tap, tap-official, motiondirector, temporal-lora, full-lora, or on a DiT tap-heads, "
        "tap-offsets, det (default auto: what training's method: auto picks for the model, full-lora on Wan, "
        "else tap)",
    )
    p.add_argument("--targets", help="override temporal targets, e.g. q,k")
    p.add_argument("--rank", type=int, default=32, help="LoRA rank for the parameter totals (default 32)")
    p.add_argument("--highway-blocks", help="'deepest' (default), 'all' or comma-separated indices")
    memory = p.add_argument_group("memory prediction (with --frames and --size)")
    memory.add_argument("--frames", type=int, help="frames per training clip, e.g. 81")
    memory.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="clip height and width, e.g. 480 832")
    memory.add_argument(
        "--precision", default="bf16", choices=("bf16", "fp16", "fp32"), help="weight dtype (default bf16)"
    )
    memory.add_argument("--fp8-base", action="store_true", help="the frozen base stored in float8")
    memory.add_argument("--gradient-checkpointing", action="store_true", help="recompute each block in backward")
    memory.add_argument("--fp8-text-encoder", action="store_true", help="the text encoder stored in float8 to cache")
    _json(p)
    p.set_defaults(func=cmd_inspect)


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def cmd_export(args) -> None:
    from .export import export_loras

    for out in export_loras(args.lora, args.out, args.format, args.overwrite):
        print(f"exported: {out}")


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a motion LoRA in another tool's layout (ComfyUI)",
        description="Write the motion LoRA of a motionsep folder as one safetensors file in the key layout "
        "ComfyUI's loaders read: AnimateDiff -> ComfyUI-AnimateDiff-Evolved's motion LoRA layout; Wan -> "
        "ComfyUI's native Wan LoRA layout (a Wan 2.2 A14B expert's LoRA gets _high_noise or _low_noise in its "
        "name, for the model node of that expert). ComfyUI has no loader for ModelScope/ZeroScope models.",
    )
    p.add_argument("lora", help="LoRA folder written by `motionsep train`")
    p.add_argument("--format", default="comfyui", choices=("comfyui",), help="target layout (default comfyui)")
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    _overwrite(p, "--out if it exists")
    p.set_defaults(func=cmd_export)


def cmd_ui(args) -> None:
    from .ui import launch

    print(f"motionsep ui: http://127.0.0.1:{args.port} (runs kept in {Path(args.root).resolve()}; Ctrl-C stops)")
    launch(args.model, args.port, args.root)


def _ui_parser(sub) -> None:
    p = sub.add_parser(
        "ui",
        help="the whole job in a local web page (needs motionsep[ui])",
        description="A local Gradio app: reference clips (upload, or render a shapes-world motion), training with a "
        "live loss curve and validation samples (stop and resume), and generation with and without the LoRA side by "
        "side. It calls the same Python API as the CLI.",
    )
    p.add_argument("--model", default="toy-animatediff", help=MODEL_HELP + " (default toy-animatediff)")
    p.add_argument("--port", type=int, default=7860, help="port on localhost (default 7860)")
    p.add_argument("--root", default="motionsep-ui", help="folder for the runs (default ./motionsep-ui)")
    p.set_defaults(func=cmd_ui)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    shown = warnings.showwarning
    try:
        _quiet_libraries()
        _one_line_warnings()
        args.func(args)
    except MotionsepError as exc:
        print(f"motionsep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("motionsep: interrupted; saved checkpoints are kept", file=sys.stderr)
        return 130
    except OSError as exc:  # the disk, not the input: full, read-only, a file where a folder should be
        print(f"motionsep: error: {_disk_problem(exc)}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
    return 0


def _disk_problem(exc: OSError) -> str:
    """One line for a failed read or write: what, where, and what to do; saved checkpoints are never removed."""
    import errno

    where = f"'{exc.filename}'" if exc.filename else "the output"
    fixes = {
        errno.ENOSPC: f"the disk is full while writing {where}: free space, then rerun (train: with --resume; "
        "saved checkpoints are kept)",
        errno.EDQUOT: f"the disk quota is used up while writing {where}: free space, then rerun",
        errno.EROFS: f"{where} is on a read-only file system: choose another output folder",
        errno.EACCES: f"no permission to write {where}: choose another output folder or fix its permissions",
        errno.EPERM: f"no permission to write {where}: choose another output folder or fix its permissions",
        errno.ENOTDIR: f"{where} (or a folder above it) is a file, not a folder: choose another output folder",
        errno.EEXIST: f"{where} already exists as a file: choose another output folder",
        errno.EISDIR: f"{where} is a folder where a file was expected: give a file path",
        errno.ENOENT: f"{where} does not exist: check the path",
    }
    return fixes.get(exc.errno or 0, f"cannot use {where}: {exc.strerror or exc}")


def _one_line_warnings() -> None:
    """A warning as one line, as errors are (Python's default adds the file, line and source of the call)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"motionsep: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
