"""Benchmark reports: JSON, Markdown tables and plots, and the machine line every number carries."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from ..checkpoint import atomic_write_text

# Generation timings the cost bench records and the targets read back by name.
FUSED_GENERATION = "tap + AH + PLI, LoRA fused"
BASE_AGAIN = "base, timed again last"  # its ratio to the first base is the noise of every ratio beside it

FOREIGN_SHEET = "foreign-sheet.png"  # the foreign-clips check's contact sheet, beside the report


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    threads = torch.get_num_threads()
    return (
        f"{cpu}, {os.cpu_count()} cores, {threads} torch threads{gpu}, torch {torch.__version__}, {platform.system()}"
    )


def write_json(path: Path, data) -> None:
    """Atomic: a reader (or a resumed run) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _ci(entry: dict, percent: bool = True) -> str:
    lo, hi = entry["ci95"]
    if percent:
        return f"{100 * entry['value']:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]"
    return f"{entry['value']:.2f} [{lo:.2f}, {hi:.2f}]"


def _rise(entry: dict) -> str:
    lo, hi = entry["ci95"]
    return f"{100 * entry['value']:+.0f} [{100 * lo:+.0f}, {100 * hi:+.0f}]"


def unnamed_rise(row: dict) -> float:
    """The single leakage number of the plot: the mean rise over the base model across unnamed attributes."""
    rises = [v["rise"]["value"] for v in row["leakage"].values() if isinstance(v, dict) and "rise" in v]
    return sum(rises) / len(rises) if rises else 0.0


def named_leakage(row: dict) -> float:
    shares = [v["value"] for v in row["leakage"].values() if "value" in v]
    return sum(shares) / len(shares) if shares else 0.0


def leakage_table(pooled: dict, names: list[str]) -> str:
    from ..toy.metrics import NAMED
    from ..toy.world import UNNAMED

    head = (
        ["variant", "motion acc. %", "traj. error px", "appearance acc. %"]
        + [f"{a} leak %" for a in NAMED]
        + [f"{a} rise %" for a in UNNAMED]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        row = pooled[name]
        cells = [
            name,
            _ci(row["motion_accuracy"]),
            _ci(row["trajectory_error"], percent=False),
            _ci(row["appearance_accuracy"]["all"]),
        ]
        cells += [_ci(row["leakage"][a]) for a in NAMED]
        cells += [_rise(row["leakage"][a]["rise"]) for a in UNNAMED]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leakage_plot(pooled: dict, path: Path, names: list[str] | None = None) -> Path:
    """Two panels against motion accuracy: unnamed-attribute rise over the base model, and named leakage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = names or list(pooled)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    markers = "osD^vP*Xh<>"
    for i, name in enumerate(names):
        row = pooled[name]
        x = 100 * row["motion_accuracy"]["value"]
        xlo, xhi = (100 * v for v in row["motion_accuracy"]["ci95"])
        for ax, y in ((axes[0], 100 * unnamed_rise(row)), (axes[1], 100 * named_leakage(row))):
            ax.errorbar(
                [x],
                [y],
                xerr=[[x - xlo], [xhi - x]],
                fmt=markers[i % len(markers)],
                capsize=3,
                color=f"C{i}",
                label=name,
                alpha=0.85,
            )
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set_title("unnamed attributes (size, window):\nrise over the base model, mean, %", fontsize=10)
    axes[1].set_title("named attributes (shape, colour, background):\nreference's value shown, mean, %", fontsize=10)
    for ax in axes:
        ax.set_xlabel("motion accuracy, % (bars: 95% CI)")
        ax.set_ylabel("leakage, %")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("shapes world: leakage against motion accuracy (lower right is better)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _positive_control_line(pooled: dict) -> str:
    from ..toy.world import UNNAMED

    control = next((n for n in pooled if n.startswith("positive control")), None)
    if control is None:
        return "The positive control was not run."
    detected = [a for a in UNNAMED if pooled[control]["leakage"][a]["rise"]["ci95"][0] > 0]
    named = [a for a, v in pooled[control]["leakage"].items() if "value" in v and v["ci95"][0] > 0.05]
    if detected or named:
        what = ", ".join(
            [f"{a} (rise {_rise(pooled[control]['leakage'][a]['rise'])})" for a in detected]
            + [f"{a} (shown {_ci(pooled[control]['leakage'][a])})" for a in named]
        )
        return f"The positive control leaks measurably: {what}. The measure can detect leakage in this world."
    return (
        "The positive control shows no leakage whose 95% interval excludes zero: in this world at this budget the "
        "measure "
        "detects nothing, so equal leakage numbers below are not evidence that any method avoids leakage."
    )


def _one_look_loras(pooled: dict, floor: str) -> list[dict]:
    """The rows of LoRAs trained on the reference look: not the floor, and not the multi-look control, whose clips
    vary size and window (its shares say nothing of the reference's)."""
    return [row for name, row in pooled.items() if name != floor and not name.startswith("multi-look control")]


def saturated_attributes(pooled: dict, floor: str) -> list[str]:
    """The unnamed attributes every LoRA (every row but `floor`) shows at the reference's value in 99% or more of
    its generations: their rise is at its ceiling, so it cannot tell the methods apart (only how far the floor
    was from 100%)."""
    from ..toy.world import UNNAMED

    rows = _one_look_loras(pooled, floor)
    return [a for a in UNNAMED if rows and all(row["leakage"][a]["share"]["value"] >= 0.99 for row in rows)]


def _saturation_lines(pooled: dict, floor: str) -> list[str]:
    """The report's paragraph on attributes at their ceiling (none when no attribute is)."""
    parts = []
    for a in saturated_attributes(pooled, floor):
        lowest = min(row["leakage"][a]["share"]["value"] for row in _one_look_loras(pooled, floor))
        base = f", the floor's {100 * pooled[floor]['leakage'][a]['share']['value']:.0f}%" if floor in pooled else ""
        parts.append(f"{a} (lowest {100 * lowest:.0f}%{base})")
    if not parts:
        return []
    return [
        "At the ceiling: every LoRA shows the reference's " + "; ".join(parts) + ". The rise then measures only how "
        "far the floor was from 100%, and does not tell the methods apart.",
        "",
    ]


def _denoiser_steps(card: dict) -> str:
    if "transformer_steps" in card:  # a DiT's card
        return f"{card['transformer_steps']} transformer steps"
    return f"{card.get('denoiser_steps', card.get('unet_steps'))} UNet steps"  # unet_steps: a card written before


def _base_model_line(card: dict | None) -> str:
    if not card:
        return "Base model: no model card."
    quality = (card.get("quality") or {}).get("accuracy", {})
    figures = ", ".join(f"{k} {100 * v['value']:.0f}%" for k, v in quality.items())
    return (
        f"Base model: {_denoiser_steps(card)}; its own accuracy on pretraining prompts: "
        f"{figures or 'not measured'}. "
        "Motion numbers below are bounded by how well the base model follows motion at all."
    )


def _leakage_target_line(pooled: dict, target: dict) -> str:
    """The benchmark's target (bench.leakage.LeakageTarget, recorded in the result), checked per candidate."""
    from ..toy.world import UNNAMED

    base_name = target["baseline"]
    candidates = [c for c in target["candidates"] if c in pooled]
    if base_name not in pooled or not candidates:
        return ""
    ceiling = target.get("ceiling") if target.get("ceiling") in pooled else base_name
    top = pooled[ceiling]["motion_accuracy"]["value"]
    base_rises = {a: pooled[base_name]["leakage"][a]["rise"]["value"] for a in UNNAMED}
    parts, met = [], []
    for name in candidates:
        row = pooled[name]
        motion = row["motion_accuracy"]["value"] / max(top, 1e-9)
        rises = {a: row["leakage"][a]["rise"]["value"] for a in UNNAMED}
        # a rise is leakage; where the baseline does not rise (it shows the reference's value less often than the
        # base model), a candidate must not rise at all (not fall as far as the baseline: that is no leak either)
        low = all(rises[a] <= target["max_rise_ratio"] * max(b, 0.0) for a, b in base_rises.items())
        if motion >= target["min_motion_ratio"] and low:
            met.append(name)
        parts.append(
            f"{name}: motion {100 * row['motion_accuracy']['value']:.0f}% ({motion:.2f}x), rise "
            + ", ".join(f"{a} {100 * r:+.0f}" for a, r in rises.items())
        )
    return (
        f"Target (one of {', '.join(candidates)} at >= {target['min_motion_ratio']:.0%} of the motion accuracy of "
        f"{ceiling} ({100 * top:.0f}%), with at most {target['max_rise_ratio']:.0%} of {base_name}'s rise on each "
        f"unnamed attribute, and none where it does not rise): {_verdict(bool(met))}"
        f"{' by ' + ', '.join(met) if met else ''}. {base_name}: motion "
        f"{100 * pooled[base_name]['motion_accuracy']['value']:.0f}%, rise "
        + ", ".join(f"{a} {100 * r:+.0f}" for a, r in base_rises.items())
        + "; "
        + "; ".join(parts)
        + ". A target on leakage can only be met where "
        f"{base_name} leaks at all; a target on motion only where {ceiling} carries the motion at all."
    )


def _foreign_lines(rows: dict) -> list[str]:
    """The foreign-clips section (bench/foreign.py): each method's tracked path against the base model's."""
    if not rows:
        return []
    lines = [
        "## Foreign clips",
        "",
        "Trained on clips the world's renderer never made (an orange disc on a gradient, a figure-eight, captions "
        "without a motion word); the generated motion read by OpenCV point tracks, not the world's evaluator: "
        "mean distance in pixels of the tracked path from the reference's (lower is closer).",
        "",
        "| method | base model px | with the LoRA px | difference [95% CI] | carries the motion |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lo, hi = row["difference"]["ci95"]
        lines.append(
            f"| {name} | {row['base_error']['value']:.2f} | {row['lora_error']['value']:.2f} | "
            f"{row['difference']['value']:+.2f} [{lo:+.2f}, {hi:+.2f}] | {'yes' if row['carries_motion'] else 'no'} |"
        )
    return [*lines, "", f"![the reference, the base model and each LoRA]({FOREIGN_SHEET})", ""]


def _sweep_choice(pooled: dict, group: list[str]) -> str:
    """The lowest unnamed rise among sweep points keeping 90% of the group's best motion accuracy."""
    best_motion = max(pooled[n]["motion_accuracy"]["value"] for n in group)
    keep = [n for n in group if pooled[n]["motion_accuracy"]["value"] >= 0.9 * best_motion]
    return min(keep, key=lambda n: (unnamed_rise(pooled[n]), -pooled[n]["motion_accuracy"]["value"]))


def _leakage_header(result: dict) -> list[str]:
    """The report's opening: command, machine, date, protocol, base model, controls, target."""
    pooled, settings, variants = result["pooled"], result["settings"], result["variants"]
    floor = next((n for n, v in variants.items() if v["training"] is None), "")  # the base model's row
    return [
        "# Leakage benchmark (shapes world)",
        "",
        f"Command: `{result.get('command', 'motionsep bench leakage')}`  ",
        *[f"Merged run: `{r['command']}` ({r['date']}; {r['machine']})  " for r in result.get("merged_runs", [])],
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}; wall time {result['wall_seconds'] / 60:.1f} min (compute in the scored pieces "
        f"{result['compute_seconds'] / 60:.1f} min)",
        "",
        f"Motions: {', '.join(settings['motions'])}; {settings['prompts']} prompts x {len(settings['seeds'])} seeds "
        "each, "
        f"{settings['train_steps']} training steps (lr {settings['learning_rate']}, rank {settings['rank']}, batch "
        f"{settings['batch_size']}), "
        f"{settings['sampling_steps']} sampling steps, guidance {settings['guidance']}. Every prompt differs from the "
        "references "
        "(red square on checker, large, with window) in shape, colour and background. Shares are pooled over all "
        "motions; "
        "95% intervals: Wilson for shares, normal on paired differences for rises and on means for trajectory error.",
        "",
        _base_model_line(result.get("base_model")),
        "",
        _positive_control_line(pooled),
        "",
        *_saturation_lines(pooled, floor),
        _leakage_target_line(pooled, result["target"]),
        "",
    ]


def leakage_report(result: dict, sweep_centre: dict[str, str]) -> str:
    pooled, settings = result["pooled"], result["settings"]
    variants = result["variants"]
    methods = [n for n, v in variants.items() if v["group"] == "methods"]
    lines = [
        *_leakage_header(result),
        "## Methods",
        "",
        leakage_table(pooled, methods),
        "",
        "Named leakage: share of generations showing the reference's colour/shape/background although the prompt "
        "names another. "
        "Rise: share showing the reference's unnamed value (large size, window) minus the base model's share for the "
        "same prompts and seeds.",
        "",
        "![leakage against motion accuracy](leakage.png)",
        "",
        "Motion accuracy per motion:",
        "",
        "| variant | " + " | ".join(settings["motions"]) + " |",
        "|---|" + "---|" * len(settings["motions"]),
    ]
    for name in methods:
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * pooled[name]['per_motion_accuracy'][m]:.0f}" for m in settings["motions"])
            + " |"
        )
    groups = sorted({v["group"] for v in variants.values()} - {"methods"})
    if groups:
        lines += ["", "## Sweeps", ""]
    for group in groups:
        members = list(
            dict.fromkeys(
                [sweep_centre[group]] * (sweep_centre[group] in pooled)
                + [n for n, v in variants.items() if v["group"] == group and n in pooled]
            )
        )
        lines += [
            f"### {group}",
            "",
            leakage_table(pooled, members),
            "",
            f"Lowest unnamed rise at >= 90% of the group's best motion accuracy: **{_sweep_choice(pooled, members)}**.",
            "",
        ]
    lines += _foreign_lines(result.get("foreign") or {})
    lines += [
        "Contact sheets (first prompt, first seed, one row per variant): "
        + ", ".join(f"`{Path(s).name}`" for s in result["sheets"]),
        "",
    ]
    return "\n".join(lines)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _ratio(row: dict, key: str) -> str:
    r = row.get("ratio_to_motiondirector", row.get("ratio_to_full_lora", {})).get(key)
    return f" ({r:.2f}x)" if r is not None else ""


def _training_table(model: str, rows: list[dict]) -> list[str]:
    """One model's training costs, a row per method, ratios in brackets."""
    lines = [
        f"## Training: {model} (denoiser {rows[0]['frozen_parameters'] / 1e6:.1f} M parameters, latents "
        f"{rows[0]['latents']})",
        "",
        "| method | LoRA layers (temporal + spatial) | trainable parameters | motion LoRA file | all saved | s / "
        "step | peak memory | predicted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        layers = r["lora_layers"]
        lines.append(
            f"| {r['method']} | {layers['temporal']} + {layers['spatial']} | "
            f"{r['trainable_parameters'] / 1e6:.3f} M{_ratio(r, 'trainable_parameters')} "
            f"| {_bytes(r['motion_lora_bytes'])}{_ratio(r, 'motion_lora_bytes')} | "
            f"{_bytes(r['saved_bytes'])}{_ratio(r, 'saved_bytes')} "
            f"| {r['seconds_per_step']:.3f}{_ratio(r, 'seconds_per_step')} | "
            f"{_bytes(r['peak_memory_bytes'])}{_ratio(r, 'peak_memory_bytes')} | "
            f"{_bytes(r['predicted_memory_bytes']) if 'predicted_memory_bytes' in r else '-'} |"
        )
    return [*lines, ""]


def cost_report(result: dict) -> str:
    settings = result["settings"]
    lines = [
        "# Cost benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}  ",
        f"Date: {result['date']}; wall time {result['wall_seconds'] / 60:.1f} min",
        "",
        f"Rank {settings['rank']}, batch {settings['batch']}, {settings['frames']} frames on the U-Nets (the Wan "
        f"models' clips: in each section's latents), {settings['dtype']} on "
        f"{settings['device']}, "
        f"gradient checkpointing {'on' if settings['gradient_checkpointing'] else 'off'}"
        f"{', the frozen base stored in float8' if settings.get('fp8_base') else ''}. Ratios in brackets are to "
        "`motiondirector` (on Wan, a DiT: to `full-lora`, what its trainers train) "
        "in the same run. A step is motionsep's training step (both paths for dual-path methods) plus AdamW, on "
        "cached latents; "
        "peak memory is above the loaded model (CPU: peak resident memory, VmHWM; GPU: torch's peak allocation); "
        "predicted: what `motionsep inspect --frames --size` predicts for that part (activations traced on the "
        "meta device, the LoRA's gradients and AdamW moments).",
        "",
    ]
    if any(r["model"] == "wan-1.3b" for r in result["training"]):
        height, width = settings.get("wan_size", ("?", "?"))
        stored = next(r.get("model_bytes") for r in result["training"] if r["model"] == "wan-1.3b")
        lines += [
            f"wan-1.3b: clips of {settings.get('wan_frames')} frames at {height}x{width} pixels"
            + (f"; its frozen weights take {stored / 2**30:.2f} GiB, to add to a peak" if stored else "")
            + ".",
            "",
        ]
    for model in dict.fromkeys(r["model"] for r in result["training"]):
        lines += _training_table(model, [r for r in result["training"] if r["model"] == model])
    for model, g in result.get("generation", {}).items():
        lines += [
            f"## Generation: {model}",
            "",
            g["what"],
            "",
            "| pipeline | seconds | ratio to base |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v:.3f} | {g['ratio_to_base'][k]:.3f} |" for k, v in g["seconds"].items()]
        lines.append("")
    lines += ["## Targets", ""] + cost_targets(result) + [""]
    if not settings["device"].startswith("cuda"):
        lines += [
            "Not measured here: the ZeroScope architecture at 384x384 x 16 frames in fp16 with gradient checkpointing "
            "needs a GPU (`motionsep bench cost --cuda --model zeroscope --zeroscope-latent 48 --frames 16`), to "
            "compare "
            "with MotionDirector's published ~14 GB.",
            "",
        ]
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def cost_targets(result: dict) -> list[str]:
    """The benchmark's targets (bench.cost.CostTargets, recorded in the result), checked against this run."""
    t = result["targets"]
    lines = []
    for row in result["training"]:
        ratio = row.get("ratio_to_motiondirector")
        if row["method"] == "tap" and ratio:
            lines.append(
                f"- {row['model']}: tap step time {ratio['seconds_per_step']:.2f}x MotionDirector's (target <= "
                f"{t['step_ratio']}x: {_verdict(ratio['seconds_per_step'] <= t['step_ratio'])}), peak memory "
                f"{ratio['peak_memory_bytes']:.2f}x (target <= {t['memory_ratio']}x: "
                f"{_verdict(ratio['peak_memory_bytes'] <= t['memory_ratio'])})."
            )
    for model, g in result.get("generation", {}).items():
        r = g["ratio_to_base"].get(FUSED_GENERATION)
        if r is not None:
            again = g["ratio_to_base"].get(BASE_AGAIN)
            noise = f"; the base timed again last: {again:.3f}x, the noise of this ratio" if again is not None else ""
            lines.append(
                f"- {model}: generation with tap LoRA (fused) + AH + PLI {r:.3f}x the base pipeline "
                f"(target <= {t['generation_ratio']}x: {_verdict(r <= t['generation_ratio'])}{noise})."
            )
    return lines
