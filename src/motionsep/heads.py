"""Temporal heads of a DiT: which attention heads look across frames, and a LoRA confined to them.

In a DiT every self-attention mixes space and time, but its heads divide the work (Follow-Your-Motion sorts Wan's
heads into spatial and temporal by their attention maps). A head's *cross-frame share* is the attention mass its
queries put on keys of other frames, measured by running the frozen model once on the reference clips. The
heads with the highest shares get the LoRA; the rows of the LoRA's B matrix that feed the other heads' queries
and keys get no gradient, so they stay at peft's zero initialisation: the saved file is an ordinary LoRA, which
plain diffusers loads, that changes the chosen heads alone.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from .errors import MotionsepError
from .losses import Objective
from .models import Denoiser, Family, frame_of_token

# How many query tokens a head's share is averaged over: every token of a small model, an even sample of a large
# one (Wan 14B at 480p has 32,760 tokens a clip; all of them would need a 32,760-square map per head).
QUERY_SAMPLE = 512


def cross_frame_attentions(denoiser: Denoiser, family: Family) -> list[str]:
    """Module names of the attentions that mix the tokens of all frames: the family's pathway that the probe
    restricts to each token's own frame ("same_frame"). A family without one (a U-Net, whose temporal attention
    sees one pixel's frames only) has no heads to choose among."""
    patterns = [p.pattern for p in family.pathways if p.action == "same_frame"]
    if not patterns:
        raise MotionsepError(
            f"choosing temporal heads needs a pathway of attention over every frame's tokens, which the "
            f"{family.name} family does not declare (a U-Net's temporal attention sees only the frames already): "
            "use the method without heads"
        )
    return [n for n, _ in denoiser.named_modules() if any(re.fullmatch(p, n) for p in patterns)]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on (batch, tokens, heads, dim), as WanAttnProcessor applies it to query and key
    (diffusers defines it inside the processor's __call__, where it cannot be imported)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out


class _QueryKeyRecorder:
    """Hooks that keep what one self-attention computes: its normed query and key and the rotary embedding."""

    def __init__(self, attention: Any):  # a diffusers WanAttention (its norm_q, norm_k and heads)
        self.seen: dict[str, torch.Tensor | tuple] = {}
        self.heads = attention.heads
        self.handles = [
            attention.register_forward_pre_hook(self._rotary, with_kwargs=True),
            attention.norm_q.register_forward_hook(lambda m, a, out: self.seen.__setitem__("q", out)),
            attention.norm_k.register_forward_hook(lambda m, a, out: self.seen.__setitem__("k", out)),
        ]

    def _rotary(self, module, args, kwargs):
        self.seen["rotary"] = args[3] if len(args) > 3 else kwargs.get("rotary_emb")

    def shares(self, frame_of_token: torch.Tensor) -> torch.Tensor:
        """Per head, the mean attention mass a query puts on keys of other frames: (heads,)."""
        q, k = (self.seen[n].unflatten(2, (self.heads, -1)).float() for n in ("q", "k"))  # type: ignore[union-attr]
        if self.seen.get("rotary") is not None:
            cos, sin = self.seen["rotary"]
            q, k = _rotate(q, cos.float(), sin.float()), _rotate(k, cos.float(), sin.float())
        tokens = q.shape[1]
        picked = torch.linspace(0, tokens - 1, min(tokens, QUERY_SAMPLE)).round().long()
        scores = torch.einsum("bqhd,bkhd->bhqk", q[:, picked], k) / math.sqrt(q.shape[-1])
        other = frame_of_token[picked][:, None] != frame_of_token[None, :]  # (queries, keys)
        return (scores.softmax(-1) * other).sum(-1).mean(dim=(0, 2))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def cross_frame_shares(
    denoiser: Denoiser,
    family: Family,
    objective: Objective,
    latents: torch.Tensor,
    text: torch.Tensor,
    conditions: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Each cross-frame attention's heads' shares on `latents` (the reference clips, with their `conditions`
    where the family has any), noised to the middle of the schedule with a fixed generator: {module name: [share
    of head 0, ...]}."""
    names = cross_frame_attentions(denoiser, family)
    modules = dict(denoiser.named_modules())
    recorders = {n: _QueryKeyRecorder(modules[n]) for n in names}
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=g).to(latents)
    t = objective.middle_timesteps(latents.shape[0]).to(latents.device)
    try:
        family.predict(denoiser, objective.noisy(latents, noise, t), t, text, conditions or None)
    finally:
        for recorder in recorders.values():
            recorder.remove()
    frames = frame_of_token(denoiser, latents.shape, latents.device)
    return {n: [round(float(s), 4) for s in r.shares(frames)] for n, r in recorders.items()}


def choose_heads(shares: dict[str, list[float]], fraction: float) -> dict[str, list[int]]:
    """In every attention, the ceil(fraction x heads) heads with the highest cross-frame shares, in head order."""
    chosen = {}
    for name, values in shares.items():
        count = max(1, math.ceil(fraction * len(values)))
        top = sorted(range(len(values)), key=lambda h: -values[h])[:count]
        chosen[name] = sorted(top)
    return chosen


def confine_to_heads(denoiser: Denoiser, chosen: dict[str, list[int]], adapter: str, layers: tuple[str, ...]) -> list:
    """Gradient masks on the LoRA B matrices of `layers` (to_q, to_k) of each attention in `chosen`: the rows of
    the other heads get none, so they keep their zero initialisation. Returns the hook handles."""
    handles = []
    modules = dict(denoiser.named_modules())
    for name, heads in chosen.items():
        for layer in layers:
            weight = modules[f"{name}.{layer}"].lora_B[adapter].weight  # (out features, rank), heads in row blocks
            per_head = weight.shape[0] // modules[name].heads
            mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
            for h in heads:
                mask[h * per_head : (h + 1) * per_head] = 1
            handles.append(weight.register_hook(lambda grad, m=mask: grad * m))
    return handles
