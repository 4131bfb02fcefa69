"""Method presets: which linear layers get LoRA, which training paths run, which loss is used.

A preset is plain data. ``lora_targets`` turns it into exact module names for a given denoiser, so what
is trained, what ``inspect`` reports and what the tests check are one and the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import MotionsepError, closest
from .models import Denoiser, family_of, spatial_transformers, temporal_transformers, transformer_blocks

# Short target names -> linear layers inside a diffusers BasicTransformerBlock attention / feed-forward.
TARGET_LAYERS: dict[str, tuple[str, ...]] = {
    "q": ("to_q",),
    "k": ("to_k",),
    "v": ("to_v",),
    "out": ("to_out.0",),
    "ff": ("ff.net.0.proj", "ff.net.2"),
}
ATTENTION_TARGETS = ("q", "k", "v", "out")


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    temporal_targets: tuple[str, ...]  # on both attentions of every temporal transformer block (ff: the block's FF)
    spatial_targets: tuple[str, ...] = ()  # on the self-attention of every spatial transformer; () = no spatial path
    joint_spatial_targets: tuple[
        str, ...
    ] = ()  # on both attentions of every spatial transformer, inside the motion LoRA
    debiased_loss: bool = False  # MotionDirector's appearance-debiased temporal loss, added to the MSE
    highway: bool = False  # Appearance Highway on at inference by default
    # a DiT: the temporal LoRA's q, k (and v) confined to this fraction of each self-attention's heads, those with
    # the highest cross-frame share on the reference clips (heads.py); None: every head
    head_fraction: float | None = None
    # a DiT: parts that are not LoRAs train with it (or alone, with no temporal targets): parts.PARTS
    parts: tuple[str, ...] = ()
    # a DiT: weight of DeT's tracking loss on the denoiser's features along the reference clips' optical-flow
    # tracks (tracks.py); 0: none
    tracking_weight: float = 0.0

    @property
    def dual_path(self) -> bool:
        return bool(self.spatial_targets)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "tap",
            "Temporal Attention Purification (the paper): LoRA on temporal q, k only; one forward a step",
            temporal_targets=("q", "k"),
            highway=True,
        ),
        Method(
            "tap-official",
            "the authors' release: temporal k, out + MotionDirector's spatial path and debiased loss",
            temporal_targets=("k", "out"),
            spatial_targets=("q", "k", "v", "out", "ff"),
            debiased_loss=True,
            highway=True,
        ),
        Method(
            "tap-heads",
            "TAP on a DiT's temporal heads: LoRA on q, k of the half of each self-attention's heads that attend "
            "most across frames on the reference clips (Follow-Your-Motion's split); the other heads stay frozen",
            temporal_targets=("q", "k"),
            head_fraction=0.5,
        ),
        Method(
            "tap-offsets",
            "TAP plus a content-independent part on a DiT: learned per-frame, per-head query and key offsets in "
            "every self-attention, the same for every token and every look (MotionInversion's embeddings)",
            temporal_targets=("q", "k"),
            parts=("frame_offsets",),
        ),
        Method(
            "det",
            "DeT on a DiT: the DiT frozen, a temporal 1-D convolution beside every self-attention is all that "
            "trains, with a tracking loss along the reference clips' optical-flow tracks",
            temporal_targets=(),
            parts=("temporal_branch",),
            tracking_weight=0.1,
        ),
        Method(
            "motiondirector",
            "MotionDirector baseline: temporal q, k, v, out, ff + spatial path on one random frame",
            temporal_targets=("q", "k", "v", "out", "ff"),
            spatial_targets=("q", "k", "v", "out", "ff"),
            debiased_loss=True,
        ),
        Method(
            "temporal-lora",
            "naive baseline: temporal q, k, v, out, plain MSE",
            temporal_targets=("q", "k", "v", "out"),
        ),
        Method(
            "full-lora",
            "leakage positive control: one LoRA on every attention (cross-attention too) and feed-forward, spatial "
            "and temporal",
            temporal_targets=("q", "k", "v", "out", "ff"),
            joint_spatial_targets=("q", "k", "v", "out", "ff"),
        ),
    )
}


def resolve_method(name: str, targets: list[str] | None = None) -> Method:
    """The preset `name`, with its temporal targets replaced by `targets` when given."""
    if name not in METHODS:
        raise MotionsepError(f"unknown method '{name}'{closest(name, METHODS)}")
    method = METHODS[name]
    if targets is not None:
        if not targets:
            raise MotionsepError("lora.targets is empty: list at least one of q, k, v, out, ff")
        for target in targets:
            if target not in TARGET_LAYERS:
                raise MotionsepError(f"unknown LoRA target '{target}'{closest(target, TARGET_LAYERS)}")
        ordered = tuple(t for t in TARGET_LAYERS if t in targets)
        method = replace(method, temporal_targets=ordered)
    return method


def _block_layers(
    denoiser: Denoiser, transformer: str, targets: tuple[str, ...], attentions: tuple[str, ...]
) -> list[str]:
    """The linear layers `targets` name in the given attentions (and, for "ff", the feed-forward) of every block
    of the transformer named `transformer` ("" for a DiT itself)."""
    family = family_of(denoiser)
    modules = dict(denoiser.named_modules())
    names = []
    for prefix in transformer_blocks(denoiser, transformer):
        for attn in attentions:
            if getattr(modules[prefix], attn, None) is None:
                continue
            for target in targets:
                if target in ATTENTION_TARGETS:
                    names += [f"{prefix}.{attn}.{layer}" for layer in TARGET_LAYERS[target]]
        if "ff" in targets:
            names += [f"{prefix}.{family.feed_forward}.{layer.removeprefix('ff.')}" for layer in TARGET_LAYERS["ff"]]
    missing = [n for n in names if n not in modules]
    if missing:
        raise MotionsepError(f"LoRA target layer '{missing[0]}' does not exist in this model")
    return names


def lora_targets(denoiser: Denoiser, method: Method) -> dict[str, list[str]]:
    """Exact module names per path: {'temporal': [...], 'spatial': [...]} (spatial empty for one-path methods).

    Temporal: the family's temporal attentions of every temporal transformer block (U-Nets: attn1 and attn2,
    both temporal self-attentions; a DiT: attn1 of every block, the self-attention across space and time),
    plus, for `joint_spatial_targets`, both attentions (self and cross) of every spatial transformer. Spatial:
    the self-attention (attn1) of every spatial transformer, as MotionDirector (a DiT: of every block, trained
    on single frames). A layer named twice is listed once.
    """
    family = family_of(denoiser)
    temporal: list[str] = []
    for name in temporal_transformers(denoiser):
        temporal += _block_layers(denoiser, name, method.temporal_targets, family.temporal_attentions)
    if method.joint_spatial_targets:
        for name in spatial_transformers(denoiser):
            temporal += _block_layers(denoiser, name, method.joint_spatial_targets, ("attn1", "attn2"))
    spatial: list[str] = []
    if method.spatial_targets:
        for name in spatial_transformers(denoiser):
            spatial += _block_layers(denoiser, name, method.spatial_targets, ("attn1",))
    return {"temporal": list(dict.fromkeys(temporal)), "spatial": list(dict.fromkeys(spatial))}


def lora_parameter_count(denoiser: Denoiser, names: list[str], rank: int) -> int:
    """Parameters a rank-`rank` LoRA adds on these linear layers: rank * (in + out) each."""
    modules = dict(denoiser.named_modules())
    return sum(rank * (modules[n].in_features + modules[n].out_features) for n in names)
