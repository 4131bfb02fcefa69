"""How much of toy-wan's first-frame gap is its VAE's: 96 rendered 17-frame clips of random pretraining scenes go
through the shipped VAE, decoded from the posterior's mode and from two posterior samples (what pretraining
trained the transformer on), and each frame is counted as drawn as prompted (`evaluate.frames_as_prompted`).

Run from the repository root: python docs/toy_wan_first_frame.py  (about a minute on a 2-core CPU)
"""

import random

import numpy as np
import torch

from motionsep.generate import MotionPipeline
from motionsep.toy.evaluate import frames_as_prompted
from motionsep.toy.pretrain_wan import WAN_FRAMES
from motionsep.toy.world import PRETRAIN_MOTIONS, random_scene, render

rng = random.Random(0)
scenes = [random_scene(rng, motions=PRETRAIN_MOTIONS) for _ in range(96)]
clips = torch.from_numpy(np.stack([render(s, WAN_FRAMES) for s in scenes])).float().permute(0, 4, 1, 2, 3) / 127.5 - 1
vae = MotionPipeline.from_pretrained("toy-wan").pipe.vae
std = torch.tensor(vae.config.latents_std)


def shown(x: torch.Tensor) -> np.ndarray:
    """(clips, frames) booleans: the object drawn as prompted in each frame of each decoded clip."""
    videos = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 4, 1).numpy()
    return np.stack([frames_as_prompted(v, s.shape, s.colour) for v, s in zip(videos, scenes)])


def report(label: str, x: torch.Tensor) -> None:
    s = shown(x)
    print(f"| {label} | {s[:, 0].mean():.1%} | {s[:, 1:].mean():.1%} |")


with torch.no_grad():
    posterior = vae.encode(clips).latent_dist  # once: the mode and the samples are read from it
    print("| decoded from | first frames as prompted | later frames |\n|---|---|---|")
    report("the renders themselves", clips)
    report("the posterior's mode", vae.decode(posterior.mode()).sample)
    for seed in (1, 2):
        sample = posterior.sample(generator=torch.Generator().manual_seed(seed))
        report(f"a posterior sample (seed {seed})", vae.decode(sample).sample)
    spread = posterior.std.mean(dim=(0, 2, 3, 4)) / std.flatten()
    print("posterior std over the latents' spread, per channel:", np.round(spread.numpy(), 2).tolist())
