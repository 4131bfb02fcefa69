"""The web UI, driven end to end in a real browser: Debian's chromium through Playwright (never downloaded)."""

from __future__ import annotations

import shutil
import socket
import urllib.request

import pytest

from motionsep.video import read_video

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fill(page, selector: str, value: str) -> None:
    """Fill a Gradio box once the tab has shown it, and leave it (its change event sends the value).

    A fill that lands while the tab's components are still being mounted is overwritten by the default; seen
    once on a slow CI machine, where the run then trained the default 300 steps."""
    box = page.locator(selector)
    box.wait_for(state="visible")
    for _ in range(20):
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(250)
        if box.input_value() == value:
            return
    raise AssertionError(f"{selector} kept {box.input_value()!r}, not {value!r}")


def test_render_train_generate_in_the_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    from motionsep.ui import launch

    chromium = shutil.which("chromium")
    assert chromium, "the browser test needs Debian's chromium: apt-get install chromium (.ci/run does)"
    port = _free_port()
    app = launch("toy-animatediff", port, str(tmp_path / "runs"), block=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}")
            page.click("#render")
            page.wait_for_selector("#clip-status:has-text('rendered')", timeout=120_000)
            page.wait_for_selector("#reference video", timeout=60_000)
            height = page.eval_on_selector("#reference video", "e => e.getBoundingClientRect().height")
            assert 0 < height <= 300  # a 32-pixel clip shown at a size that stays sharp, not the page's width
            page.get_by_role("tab", name="2. train").click()
            _fill(page, "#steps input", "2")
            page.click("#train")
            page.wait_for_selector("#train-status:has-text('training finished')", timeout=300_000)
            assert "training finished: 2 steps" in page.inner_text("#train-status")  # the run the page asked for
            assert any((tmp_path / "runs").glob("run-*/lora/samples/step-000002/*.mp4"))  # validation samples
            page.get_by_role("tab", name="3. generate").click()
            _fill(page, "#prompts textarea", "a green triangle moving in a zigzag on a stripes background")
            page.click("#generate")
            page.wait_for_selector("#lora-videos video", timeout=300_000)
            page.wait_for_selector("#base-videos video", timeout=60_000)
            sources = page.eval_on_selector_all("#base-videos video, #lora-videos video", "els => els.map(e => e.src)")
            browser.close()
        assert len(sources) == 2  # one prompt, one seed: the base model and the LoRA side by side
        for i, src in enumerate(sources):
            video = tmp_path / f"shown-{i}.mp4"
            video.write_bytes(urllib.request.urlopen(src).read())  # as the page's <video> fetches it
            assert read_video(video).shape == (8, 32, 32, 3)  # what the page shows decodes, 8 frames each
    finally:
        app.close()


def test_stopped_training_resumes_from_its_checkpoint(tmp_path):
    """Stop kills the `motionsep train` child; Resume continues from the newest checkpoint to the end."""
    import csv
    import time

    from motionsep.ui import Session, render_motion, start_training, stop_training, training_config, training_status

    session = Session(tmp_path / "run-20261201-000000")  # as the app names its runs
    render_motion(session, "zigzag", "toy-animatediff")
    config = training_config(session, "toy-animatediff", "tap", 8, 1e-3, "a blue circle moving in a zigzag")
    start_training(session, config, resume=False)
    checkpoints = session.run / "checkpoints"
    deadline = time.time() + 240
    while not any(checkpoints.glob("step-*/training_state/state.json")) and time.time() < deadline:
        time.sleep(0.5)
    assert stop_training(session).startswith("stopped")
    assert not (session.run / "motionsep.json").is_file()  # stopped before the end
    status, *_ = training_status(session, 8)
    assert status.startswith("stopped at step") and "Resume continues" in status  # not "training failed"
    session = Session.latest(tmp_path)  # what Resume picks up after a page reload: the run on disk
    assert session is not None and session.root == tmp_path / "run-20261201-000000"
    start_training(session, config, resume=True)
    session.process.wait(timeout=300)
    status, rows, samples, finished = training_status(session, 8)
    assert finished and status.startswith("training finished"), status
    logged = [int(r["step"]) for r in csv.DictReader((session.run / "train_log.csv").read_text().splitlines())]
    assert logged == [r["step"] for r in rows] == list(range(1, 9))  # every step once, as the loss curve shows it
    assert samples  # the validation samples the page shows
    import zipfile

    from motionsep.errors import MotionsepError
    from motionsep.ui import results_zip

    with zipfile.ZipFile(results_zip(session)) as z:  # the results, not the resumable state, nor a zip of itself
        names = z.namelist()
    assert "lora/pytorch_lora_weights.safetensors" in names and "config.yaml" in names
    assert not [n for n in names if "checkpoints" in n or n.endswith(".zip")]
    with pytest.raises(MotionsepError, match="learning_rate must be a finite number above 0"):
        training_config(session, "toy-animatediff", "tap", 8, -1.0, "a blue circle")
