"""The toy-wan pretraining at a glance: the transformer's loss, its learning rate, and the quality
reports taken on the way (shape accuracy, 200 generations each, 95% intervals).

Run from the repository root: python docs/toy_wan_pretraining.py  (writes docs/toy_wan_pretraining.png)
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
log = [json.loads(line) for line in (HERE / "toy_wan_pretrain_log.jsonl").read_text().splitlines()]
steps, losses = zip(*[(r["step"], r["loss"]) for r in log if r.get("stage") == "transformer"])
reports = {
    step: json.loads((HERE / name).read_text())["accuracy"]
    for step, name in (
        (12000, "toy_wan_quality_step12000.json"),
        (20000, "toy_wan_quality_step20000.json"),
        (25000, "toy_wan_quality.json"),
    )
}
fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
top.plot(steps, losses, color="tab:blue")
top.set_ylabel("training loss (mean of 250 steps)")
top.axvspan(20000, 25000, color="0.9")
top.text(20200, max(losses) * 0.95, "learning rate\ncools to 0", fontsize=9, va="top")
top.set_title("toy-wan: transformer pretraining (constant lr 3e-4, then cool-down)", fontsize=10)
for attribute, colour in (("shape", "tab:red"), ("motion", "tab:green"), ("colour", "tab:purple")):
    xs = sorted(reports)
    values = [100 * reports[s][attribute]["value"] for s in xs]
    low = [v - 100 * reports[s][attribute]["ci95"][0] for s, v in zip(xs, values)]
    high = [100 * reports[s][attribute]["ci95"][1] - v for s, v in zip(xs, values)]
    bottom.errorbar(xs, values, yerr=[low, high], marker="o", capsize=3, color=colour, label=attribute)
bottom.axhline(75, color="tab:red", linestyle=":", label="shape bar (75%)")
bottom.axvspan(20000, 25000, color="0.9")
bottom.set_ylim(0, 105)
bottom.set_ylabel("accuracy on 200 generations, %")
bottom.set_xlabel("transformer step")
bottom.legend(fontsize=8, loc="lower right")
fig.tight_layout()
fig.savefig(HERE / "toy_wan_pretraining.png", dpi=110)
print(HERE / "toy_wan_pretraining.png")
