"""`motionsep evaluate`: the field's metrics for videos from any model, with feature models given locally.

Per generated video: CLIP text alignment (mean cosine of each frame with its prompt), CLIP temporal
consistency (mean cosine of consecutive frames), similarity to the reference clips (mean cosine of
each frame with the mean reference-frame embedding) and, with base-model videos of the same prompts
and seeds (matched by file name), appearance leakage = that similarity minus the base video's.
Motion fidelity against the reference clips comes from OpenCV point tracks (motion_fidelity.py).
The CLIP model is read from a local folder the user gives; nothing is downloaded.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import find_clips
from .errors import MotionsepError
from .motion_fidelity import motion_fidelity
from .stats import mean_ci
from .video import read_video


class ClipScorer:
    """CLIP image and text embeddings (unit length) from a local transformers CLIP folder."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise MotionsepError(
                f"'{path}' is not a CLIP model folder (no config.json): give a local transformers CLIP folder with "
                "--clip"
            )
        model: Any = CLIPModel.from_pretrained(str(path))
        self.model = model.to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.processor = AutoImageProcessor.from_pretrained(str(path))
        self.device = device

    @torch.no_grad()
    def images(self, frames: np.ndarray) -> torch.Tensor:
        pixels = self.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(self.device)
        return torch.nn.functional.normalize(_features(self.model.get_image_features(pixel_values=pixels)), dim=-1)

    @torch.no_grad()
    def text(self, prompt: str) -> torch.Tensor:
        ids = self.tokenizer(
            [prompt],
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        feats = self.model.get_text_features(
            input_ids=ids.input_ids.to(self.device), attention_mask=ids.attention_mask.to(self.device)
        )
        return torch.nn.functional.normalize(_features(feats), dim=-1)[0]


def _features(output) -> torch.Tensor:
    """transformers 5 may return a model output instead of a tensor from get_*_features."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def read_prompts(path: str | Path) -> dict[str, str]:
    """Video file name -> prompt, from motionsep's generation.json or a CSV with columns video,prompt."""
    path = Path(path)
    if not path.is_file():
        raise MotionsepError(
            f"prompts file '{path}' not found: give generation.json from `motionsep generate` or a CSV with columns "
            "video,prompt"
        )
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {Path(v["mp4"]).name: v["prompt"] for v in data["videos"]}
        except (json.JSONDecodeError, KeyError, TypeError):
            raise MotionsepError(f"'{path}' is not a generation.json (it needs videos: [{{mp4, prompt}}])") from None
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"video", "prompt"} <= set(rows[0]):
        raise MotionsepError(f"'{path}' needs a header line with the columns video,prompt")
    return {Path(r["video"]).name: r["prompt"] for r in rows}


def _videos(folder: str | Path, what: str) -> dict[str, Path]:
    """The videos of a folder by file name; a GIF beside an MP4 of the same name (`motionsep generate` writes
    both of every video) is the same video, counted once, as its MP4."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MotionsepError(f"{what} folder '{folder}' not found")
    clips = find_clips(folder)
    mp4_stems = {p.stem for p in clips if p.suffix.lower() == ".mp4"}
    found = {p.name: p for p in clips if not (p.suffix.lower() == ".gif" and p.stem in mp4_stems)}
    if not found:
        raise MotionsepError(f"{what} folder '{folder}' holds no videos")
    return found


def evaluate_videos(
    videos: str | Path,
    prompts: str | Path,
    clip: str | Path,
    reference: str | Path | None = None,
    base_videos: str | Path | None = None,
    progress: bool = True,
) -> dict:
    generated = _videos(videos, "--videos")
    prompt_of = read_prompts(prompts)
    missing = [n for n in generated if n not in prompt_of]
    if missing:
        raise MotionsepError(f"no prompt for '{missing[0]}' in {prompts}: every video needs one")
    base = _videos(base_videos, "--base-videos") if base_videos else {}
    unmatched = [n for n in generated if base and n not in base]
    if unmatched:
        raise MotionsepError(
            f"no base-model video named '{unmatched[0]}' in {base_videos}: generate the base videos with the same "
            "prompts and seeds"
        )
    scorer = ClipScorer(clip)
    refs = [read_video(p) for p in _videos(reference, "--reference").values()] if reference else []
    ref_embedding = None
    if refs:
        ref_embedding = torch.nn.functional.normalize(torch.cat([scorer.images(r) for r in refs]).mean(0), dim=-1)
    rows = []
    for name, path in tqdm(sorted(generated.items()), desc="evaluate", disable=not progress):
        frames = read_video(path)
        emb = scorer.images(frames)
        row = {
            "video": name,
            "prompt": prompt_of[name],
            "clip_text_alignment": float((emb @ scorer.text(prompt_of[name])).mean()),
            "clip_temporal_consistency": float((emb[1:] * emb[:-1]).sum(-1).mean()) if len(emb) > 1 else 1.0,
        }
        if ref_embedding is not None:
            row["reference_similarity"] = float((emb @ ref_embedding).mean())
            row["motion_fidelity"] = float(np.mean([motion_fidelity(frames, r) for r in refs]))
            if base:
                base_emb = scorer.images(read_video(base[name]))
                row["base_reference_similarity"] = float((base_emb @ ref_embedding).mean())
                row["appearance_leakage"] = row["reference_similarity"] - row["base_reference_similarity"]
        rows.append(row)
    keys = [k for k in rows[0] if k not in ("video", "prompt")]
    summary = {k: mean_ci([r[k] for r in rows], digits=4) for k in keys}
    return {
        "videos": rows,
        "summary": summary,
        "clip": str(clip),
        "reference": str(reference) if reference else None,
        "base_videos": str(base_videos) if base_videos else None,
    }


def write_results(result: dict, out: str | Path) -> tuple[Path, Path]:
    """out.json (everything) and out.csv (one row per video)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out.with_suffix(".json"), out.with_suffix(".csv")
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(result["videos"][0]))
        writer.writeheader()
        writer.writerows(result["videos"])
    return json_path, csv_path


def _fit(name: str, width: int) -> str:
    """A name cut in the middle, so its end (a seed, "-seed1.mp4") still tells rows apart."""
    return name if len(name) <= width else f"{name[: width - 17]}...{name[-14:]}"


def format_table(result: dict) -> str:
    keys = list(result["summary"])
    short = {
        "clip_text_alignment": "text",
        "clip_temporal_consistency": "temporal",
        "reference_similarity": "ref.sim",
        "base_reference_similarity": "base ref.sim",
        "appearance_leakage": "leakage",
        "motion_fidelity": "motion fid.",
    }
    head = f"{'video':40s} " + " ".join(f"{short.get(k, k):>12s}" for k in keys)
    lines = [head, "-" * len(head)]
    for r in result["videos"]:
        lines.append(f"{_fit(r['video'], 40):40s} " + " ".join(f"{r[k]:12.4f}" for k in keys))
    lines.append("-" * len(head))
    lines.append(f"{'mean':40s} " + " ".join(f"{result['summary'][k]['value']:12.4f}" for k in keys))
    return "\n".join(lines)
