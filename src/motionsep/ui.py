"""`motionsep ui`: the whole job in a local web page (Gradio), a thin layer over the Python API.

Nothing here is a second implementation: reference clips come from `toy.reference.write_reference_clips` or
the user's uploads; training is `motionsep train` itself, run as a child process on a config written to
the run folder, so it can be stopped, resumed from its checkpoint (`--resume`), and survives a closed
page or a stopped server; the loss curve and the validation samples are read from the files that run
writes (train_log.csv, samples/); generation is `generate.generate_videos` with and without the LoRA; the
shapes-world scores are `toy.evaluate.evaluate_video`.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from .errors import MotionsepError

MOTIONS_TO_RENDER = ("zigzag", "orbit", "bounce", "spiral")
DEFAULT_MODEL = "toy-animatediff"


class Session:
    """One browser session's run: its folder, its training process."""

    def __init__(self, root: Path):
        self.root = root
        self.process: subprocess.Popen | None = None
        self.stopped = False  # by the Stop button: not a failure

    @classmethod
    def latest(cls, runs: Path) -> Session | None:
        """The newest run under `runs` that has a training config: what Resume picks up after a page reload."""
        found = sorted((p for p in runs.glob("run-*") if (p / "config.yaml").is_file()), key=lambda p: p.name)
        return cls(found[-1]) if found else None

    @property
    def clips(self) -> Path:
        return self.root / "reference" / "clips"

    @property
    def run(self) -> Path:
        return self.root / "lora"


def render_motion(session: Session, motion: str, model: str) -> tuple[str, str]:
    """Shapes-world reference clips of `motion`; returns (first clip, message)."""
    from .toy.reference import write_reference_clips

    shutil.rmtree(session.root / "reference", ignore_errors=True)
    write_reference_clips(session.root / "reference", motion, count=4, overwrite=True, model=model)
    first = sorted(session.clips.glob("*.mp4"))[0]
    return str(first), f"4 reference clips of '{motion}' rendered in {session.clips}"


def held_out_prompts(motion: str, count: int) -> list[str]:
    """Prompts with the rendered motion and looks unlike the reference's (the benchmark's looks)."""
    from .toy.protocol import BENCH_LOOKS
    from .toy.world import Scene, caption

    return [caption(Scene(shape, colour, background, motion)) for shape, colour, background in BENCH_LOOKS[:count]]


def upload_clips(session: Session, files: list[Any] | None, caption: str) -> str:
    if not files:
        raise MotionsepError("no clips uploaded: choose video files, or render a shapes-world motion")
    shutil.rmtree(session.clips, ignore_errors=True)
    session.clips.mkdir(parents=True)
    for f in files:
        source = Path(getattr(f, "name", f))
        target = session.clips / source.name
        shutil.copy(source, target)
        if caption.strip():
            target.with_suffix(".txt").write_text(caption.strip() + "\n", encoding="utf-8")
    return f"{len(files)} clip(s) in {session.clips}"


def training_config(session: Session, model: str, method: str, steps: int, lr: float, prompt: str) -> Path:
    """The run's config.yaml: the same file `motionsep train` reads. Shapes-world models take the world's
    sampling settings; validation samples every quarter of the run."""
    from .models import EMBEDDED_MODELS
    from .toy.protocol import world_frames

    clips = sorted(session.clips.glob("*.mp4")) if session.clips.is_dir() else []
    if not clips:
        raise MotionsepError("no reference clips yet: upload clips or render a shapes-world motion first")
    world = model in EMBEDDED_MODELS
    data = {
        "model": model,
        "method": method,
        "output_dir": str(session.run),
        "data": {"path": str(session.clips), "frames": world_frames(model), "size": [32, 32] if world else [384, 384]},
        "train": {
            "steps": int(steps),
            "learning_rate": float(lr),
            "batch_size": 4 if world else 1,
            "checkpoint_every": max(1, int(steps) // 4),
            "validation": {"prompts": [prompt], "seeds": [0], "every": max(1, int(steps) // 4)}
            | ({"steps": 25, "guidance": 6.0} if world else {}),
        },
        "lora": {"rank": 16 if world else 32},
    }
    from .config import config_from_dict

    config_from_dict(data)  # the checks `motionsep train` makes, here in one line instead of a failed child
    path = session.root / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def start_training(session: Session, config: Path, resume: bool) -> None:
    """`motionsep train` as a child process; --resume continues a stopped run from its newest checkpoint."""
    if session.process is not None and session.process.poll() is None:
        raise MotionsepError("training is already running: stop it first")
    args = [sys.executable, "-m", "motionsep", "train", str(config), "--no-progress"]
    args += ["--resume"] if resume else ["--overwrite"]
    log = open(session.root / "train_output.txt", "w")  # noqa: SIM115 - the child process writes it
    session.stopped = False
    session.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())


def stop_training(session: Session) -> str:
    if session.process is None or session.process.poll() is not None:
        return "nothing is training"
    session.stopped = True
    session.process.terminate()
    session.process.wait(timeout=30)
    return "stopped: the newest checkpoint is kept; Resume continues from it"


def training_status(session: Session, steps: int) -> tuple[str, list[dict], list[tuple[str, str]], bool]:
    """(status line, loss rows, validation samples, finished) read from the files the run writes."""
    rows = []
    log = session.run / "train_log.csv"
    if log.is_file():
        rows = [
            {"step": int(r["step"]), "loss": float(r["loss"])}
            for r in csv.DictReader(log.read_text().splitlines())
            if r.get("step", "").isdigit()
        ]
    samples = [
        (str(mp4), mp4.parent.name)
        for mp4 in sorted(session.run.glob("samples/step-*/*.mp4"), key=lambda p: p.parent.name)
    ]
    running = session.process is not None and session.process.poll() is None
    done = (session.run / "motionsep.json").is_file() and not running
    failed = session.process is not None and not running and session.process.returncode not in (0, None)
    step = rows[-1]["step"] if rows else 0
    if failed and session.stopped:
        status = f"stopped at step {step} of {int(steps)}: Resume continues from the newest checkpoint"
    elif failed:
        output = (session.root / "train_output.txt").read_text().strip().splitlines()
        status = f"training failed: {output[-1] if output else 'no output'}"
    elif done:
        status = f"training finished: {len(rows)} steps, LoRA in {session.run}"
    else:
        status = f'training: step {step} of {int(steps)} <progress value="{step}" max="{int(steps)}"></progress>'
    return status, rows, samples, done or failed


def generate(
    session: Session, model: str, prompts: str, seeds: str, highway: bool, pli: bool, lora_scale: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[list[Any]], str]:
    """Videos with and without the LoRA for every prompt and seed; scores when the model is a shapes world."""
    from .generate import MotionPipeline, generate_videos
    from .models import EMBEDDED_MODELS
    from .toy.protocol import world_sampling

    if not (session.run / "motionsep.json").is_file():
        raise MotionsepError("no LoRA yet: train first")
    prompt_list = [p.strip() for p in prompts.splitlines() if p.strip()]
    if not prompt_list:
        raise MotionsepError("no prompt: write one or more prompts, one per line")
    try:
        seed_list = [int(s) for s in seeds.replace(",", " ").split()] or [0]
    except ValueError:
        raise MotionsepError(f"seeds '{seeds}' are not whole numbers: write e.g. 0, 1, 2") from None
    settings = world_sampling(model) if model in EMBEDDED_MODELS else None
    out = session.root / "videos"
    shutil.rmtree(out, ignore_errors=True)
    pipelines = {
        "base": MotionPipeline.from_pretrained(model),
        "lora": MotionPipeline.from_pretrained(
            model, lora=str(session.run), highway=highway, pli_tau=333 if pli else -1, lora_scale=lora_scale
        ),
    }
    records = {
        name: generate_videos(p, prompt_list, seed_list, out / name, settings, progress=False)
        for name, p in pipelines.items()
    }
    scores: list[list[Any]] = []
    if model in EMBEDDED_MODELS:
        from .toy.evaluate import evaluate_video
        from .video import read_video

        for name, recs in records.items():
            for r in recs:
                predicted = evaluate_video(read_video(r["mp4"]))
                scores.append(
                    [name, r["prompt"], r["seed"], predicted["motion"], predicted["shape"], predicted["colour"]]
                )
    archive = results_zip(session)
    galleries = [[(r["mp4"], f"{r['prompt']} (seed {r['seed']})") for r in records[name]] for name in ("base", "lora")]
    return galleries[0], galleries[1], scores, archive


def results_zip(session: Session) -> str:
    """The LoRA folder (without its checkpoints: resumable state, not results), its config and the videos, as
    one zip beside the run folder (inside it, each zip would hold the last one)."""
    import zipfile

    archive = session.root.parent / f"{session.root.name}-results.zip"
    keep = [p for p in sorted(session.root.rglob("*")) if p.is_file()]
    keep = [p for p in keep if "checkpoints" not in p.relative_to(session.root).parts and p.suffix != ".zip"]
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in keep:
            if path.relative_to(session.root).parts[0] in ("lora", "videos") or path.name == "config.yaml":
                z.write(path, path.relative_to(session.root))
    return str(archive)


def build_app(model: str = DEFAULT_MODEL, root: str | Path | None = None):
    """The Gradio Blocks app. `root`: where runs are kept (default ./motionsep-ui)."""
    import gradio as gr

    runs = Path(root or "motionsep-ui").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="motionsep") as app:
        ui = _layout(gr, model)
        _wire(gr, ui, runs)
    app.runs_root = runs
    return app


def _layout(gr, model: str) -> SimpleNamespace:
    """The page: base model and method, then the three steps as tabs. Videos are shown at a size that keeps the
    32-pixel world's frames sharp instead of stretched to the page's width."""
    from .methods import METHODS
    from .models import EMBEDDED_MODELS

    ui = SimpleNamespace(state=gr.State(None))
    gr.Markdown("# motionsep\nLearn a motion from reference clips, then generate it with any appearance.")
    with gr.Row():
        ui.model = gr.Dropdown(
            [model, *EMBEDDED_MODELS], value=model, allow_custom_value=True, label="base model", scale=1
        )
        ui.method = gr.Dropdown(
            [("auto: the model family's measured default (Wan: full-lora, else tap)", "auto")]
            + [(f"{m.name}: {m.summary}", m.name) for m in METHODS.values()],
            value="auto",
            label="method",
            scale=3,
        )
    with gr.Tab("1. reference clips"):
        with gr.Row():
            ui.motion = gr.Dropdown(list(MOTIONS_TO_RENDER), value="zigzag", label="shapes-world motion")
            ui.render = gr.Button("Render motion", elem_id="render")
        ui.uploads = gr.File(file_count="multiple", file_types=["video"], label="or upload clips")
        ui.caption = gr.Textbox(label="caption for uploaded clips", value="")
        ui.upload = gr.Button("Use uploaded clips")
        ui.clip = gr.Video(label="first reference clip", elem_id="reference", height=256, width=256)
        ui.clip_status = gr.Markdown(elem_id="clip-status")
    with gr.Tab("2. train"):
        with gr.Row():
            ui.steps = gr.Number(value=300, precision=0, label="steps", elem_id="steps")
            ui.lr = gr.Number(value=1e-3, label="learning rate")
            ui.prompt = gr.Textbox(value=_default_prompt(), label="validation prompt")
        with gr.Row():
            ui.train = gr.Button("Train", variant="primary", elem_id="train")
            ui.stop = gr.Button("Stop", elem_id="stop")
            ui.resume = gr.Button("Resume", elem_id="resume")
        ui.status = gr.HTML(elem_id="train-status")  # the status line and a progress bar
        ui.loss = gr.Plot(label="loss", elem_id="loss")
        ui.samples = gr.Gallery(label="validation samples", columns=4, height=240, object_fit="contain")
    with gr.Tab("3. generate"):
        _generate_tab(gr, ui)
    return ui


def _default_prompt() -> str:
    """The world's words (its backgrounds are 'stripes', not 'striped') and the default motion, in a new look."""
    return held_out_prompts("zigzag", 1)[0]


def _generate_tab(gr, ui: SimpleNamespace) -> None:
    ui.prompts = gr.Textbox(
        value="\n".join(held_out_prompts("zigzag", 2)), lines=3, label="prompts, one per line", elem_id="prompts"
    )
    with gr.Row():
        ui.seeds = gr.Textbox(value="0", label="seeds")
        ui.highway = gr.Checkbox(value=True, label="Appearance Highway")
        ui.pli = gr.Checkbox(value=False, label="Phased LoRA Integration (tau 333)")
        ui.scale = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="LoRA scale")
    ui.generate = gr.Button("Generate", variant="primary", elem_id="generate")
    with gr.Row():
        ui.base = gr.Gallery(label="base model", columns=2, elem_id="base-videos", height=280, object_fit="contain")
        ui.lora = gr.Gallery(
            label="with the motion LoRA", columns=2, elem_id="lora-videos", height=280, object_fit="contain"
        )
    ui.scores = gr.Dataframe(
        headers=["model", "prompt", "seed", "motion seen", "shape seen", "colour seen"],
        label="shapes-world evaluator",
    )
    ui.download = gr.File(label="download: LoRA folder and videos (zip)")


def _guarded(gr, fn):
    """A user's mistake as the one-line message motionsep prints (a red toast), not a server traceback."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MotionsepError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapped


def _wire(gr, ui: SimpleNamespace, runs: Path) -> None:
    """What each button does; each calls the Python API above."""

    def session_for(state: Session | None, resume: bool = False) -> Session:
        if state is None and resume:  # a reloaded page: pick up the newest run on disk
            state = Session.latest(runs)
        return state or Session(runs / time.strftime("run-%Y%m%d-%H%M%S"))

    def on_render(s, motion, m):
        s = session_for(s)
        clip, message = render_motion(s, motion, m)
        return s, clip, message, "\n".join(held_out_prompts(motion, 2)), held_out_prompts(motion, 1)[0]

    def on_upload(s, files, caption):
        s = session_for(s)
        return s, upload_clips(s, files, caption)

    def on_train(s, m, method, steps, lr, prompt, resume=False):
        try:
            s = session_for(s, resume)
            config = s.root / "config.yaml"
            if not resume or not config.is_file():
                config = training_config(s, m, method, steps, lr, prompt)
            start_training(s, config, resume)
        except MotionsepError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        yield from _follow(s, steps)

    def on_resume(s, m, method, steps, lr, prompt):
        yield from on_train(s, m, method, steps, lr, prompt, resume=True)

    state = ui.state
    ui.render.click(
        _guarded(gr, on_render), [state, ui.motion, ui.model], [state, ui.clip, ui.clip_status, ui.prompts, ui.prompt]
    )
    ui.upload.click(_guarded(gr, on_upload), [state, ui.uploads, ui.caption], [state, ui.clip_status])
    train_inputs = [state, ui.model, ui.method, ui.steps, ui.lr, ui.prompt]
    train_outputs = [state, ui.status, ui.loss, ui.samples]
    ui.train.click(on_train, train_inputs, train_outputs)
    ui.resume.click(on_resume, train_inputs, train_outputs)
    ui.stop.click(_guarded(gr, lambda s: stop_training(session_for(s))), [state], [ui.status])
    ui.generate.click(
        _guarded(gr, lambda s, *a: generate(session_for(s), *a)),
        [state, ui.model, ui.prompts, ui.seeds, ui.highway, ui.pli, ui.scale],
        [ui.base, ui.lora, ui.scores, ui.download],
    )


def _follow(s: Session, steps):
    """Re-read the run's files every second until its process ends: status, loss curve, samples."""
    while True:
        running = s.process is not None and s.process.poll() is None
        status, rows, shown, _ = training_status(s, steps)
        yield s, status, loss_figure(rows, steps), shown
        if not running:
            return
        time.sleep(1.0)


def loss_figure(rows: list[dict], steps) -> Any:
    """The loss curve as a matplotlib figure (its axes keep their labels whole at any width)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=100, layout="constrained")
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="#e8590c", linewidth=1.5)
    ax.set_xlim(0, max(int(steps), 1))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    plt.close(fig)
    return fig


def launch(model: str = DEFAULT_MODEL, port: int = 7860, root: str | None = None, block: bool = True):
    """Start the app on localhost:`port`."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise MotionsepError('the web UI needs Gradio: pip install "motionsep[ui]"') from None
    app = build_app(model, root)
    app.queue()
    allowed = [str(Path(root or "motionsep-ui").resolve())]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=not block, allowed_paths=allowed)
    return app
