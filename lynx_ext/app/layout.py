"""The Gradio page: face photo and its preview, the job's settings, and the outputs of finished jobs.

Jobs go through Gradio's queue (one runs at a time; a waiting job shows its place in the queue). Settings are
checked when Generate is pressed, before the job is queued, and a bad value or a photo without a face is shown
as one sentence, never a traceback.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import gradio as gr

from ..cli.common import USER_ERRORS
from .face_preview import NO_PHOTO, preview_panel, shown_name
from .jobs import JobResult, JobRunner
from .settings import JobSettings

log = logging.getLogger(__name__)

HISTORY_HEADERS = ["job", "prompt", "variant", "seed", "seconds", "video"]
HISTORY_REFRESH_S = 3.0  # the finished-jobs table also shows jobs started in other tabs
QUEUED = "**Job queued**: it waits for the jobs before it; its place in the queue shows on the video panel."
RUNNING = "**Job running**: loading, face analysis, the denoising steps and decoding show on the video panel."
# Gradio keeps error toasts (duration=None) until closed; a later successful job closes them.
CLOSE_ERROR_TOASTS = ("() => { document.querySelectorAll('[data-testid=toast-body] button.toast-close.error')"
                      ".forEach((b) => b.click()); }")


def theme() -> gr.themes.Base:
    """System fonts only: the page makes no request outside this machine."""
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def build_app(runner: JobRunner, defaults: JobSettings, *, real_model: bool, intro: str = "",
              preset: Optional[str] = None) -> gr.Blocks:
    """The app's `gr.Blocks`. ``defaults``: the form's initial values; ``real_model`` shows the memory options;
    ``preset``: the base-model preset, whose default sizes are reapplied when the variant changes."""
    num_blocks = runner.cache.num_blocks
    with gr.Blocks(title="Lynx", analytics_enabled=False, fill_width=True) as app:
        gr.Markdown("## Lynx: identity-preserving video from one face photo\n" + intro)
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=320):
                photo = gr.Image(label="Face photo", type="filepath", image_mode=None, format="png",
                                 sources=["upload", "clipboard"], height=300, elem_id="face-photo")
                face_info = gr.Markdown(NO_PHOTO, elem_id="face-info")
                annotated = gr.Image(label="Detected face: box and 5 landmarks", interactive=False, format="png",
                                     height=280, buttons=["download", "fullscreen"], elem_id="face-annotated")
                with gr.Row():
                    crop_112 = gr.Image(label="ArcFace crop, 112 px", interactive=False, format="png", height=180,
                                        buttons=["download"], elem_id="face-crop-112")
                    crop_256 = gr.Image(label="Reference crop, 256 px", interactive=False, format="png", height=180,
                                        buttons=["download"], elem_id="face-crop-256")
            with gr.Column(scale=5, min_width=360):
                c = _settings_controls(defaults, real_model, num_blocks)
                run = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=5, min_width=360):
                status = gr.Markdown("No job yet. Jobs run one at a time; a waiting job shows its place in the "
                                     "queue.", elem_id="status")
                video = gr.Video(label="Video", interactive=False, loop=True, elem_id="video")
                sheet = gr.Image(label="Contact sheet", interactive=False, format="png", elem_id="contact-sheet")
                files = gr.File(label="Files: video, contact sheet, report", file_count="multiple",
                                interactive=False, elem_id="files")
                report = gr.JSON(label="Report", open=False, elem_id="report")
        history = gr.Dataframe(headers=HISTORY_HEADERS, value=_history_rows(runner), label="Finished jobs",
                               interactive=False, wrap=True, elem_id="history")
        gr.Timer(HISTORY_REFRESH_S).tick(lambda: _history_rows(runner), outputs=history, queue=False,
                                         show_progress="hidden")

        def preview(image):
            return preview_panel(runner.cache.face_analyzer, image)

        def change_variant(variant):
            d = JobSettings.defaults(variant, preset)
            return (gr.update(value=d.num_frames), gr.update(value=d.fps), gr.update(value=d.identity_guidance),
                    gr.update(value=d.cfg_scale_i), gr.update(interactive=variant == "full"))

        inputs = {photo, *c.values()}

        def check(data: dict):
            _user_errors_to_ui(lambda: runner.check(data[photo], _settings(data, c)), data[photo])
            return QUEUED

        def generate(data: dict, progress=gr.Progress()):
            # A generator: the first yield comes when the job leaves the queue and starts to run.
            yield (RUNNING, *[gr.update()] * 5)

            def report_progress(done: int, total: int, what: str):
                progress((done, total) if total else 0.0, desc=what, unit="steps")

            job = _user_errors_to_ui(lambda: runner.run(data[photo], _settings(data, c), report_progress), data[photo])
            yield (_status(job), str(job.paths["video"]), str(job.paths["contact_sheet"]),
                   [str(p) for p in job.paths.values()], job.report, _history_rows(runner))

        photo.change(preview, inputs=photo, outputs=[annotated, crop_112, crop_256, face_info],
                     concurrency_id="preview", concurrency_limit=1)
        c["variant"].change(change_variant, inputs=c["variant"], queue=False,
                            outputs=[c["num_frames"], c["fps"], c["identity_guidance"], c["cfg_scale_i"],
                                     c["ref_scale"]])
        job = run.click(check, inputs=inputs, outputs=status, concurrency_limit=None,
                        trigger_mode="multiple").success(
            generate, inputs=inputs, outputs=[status, video, sheet, files, report, history],
            concurrency_id="generate", concurrency_limit=1, show_progress_on=video, trigger_mode="multiple")
        job.success(None, js=CLOSE_ERROR_TOASTS, queue=False)  # a finished job retires earlier error messages
        job.failure(lambda: "**The job did not finish**; the message says why.", outputs=status, queue=False)
    return app


def _settings_controls(d: JobSettings, real_model: bool, num_blocks: Optional[int]) -> dict[str, Any]:
    """One control per `JobSettings` field (the dict's keys), grouped as on the ``generate`` command line."""
    c: dict[str, Any] = {}
    c["prompt"] = gr.Textbox(label="Prompt", lines=3, value=d.prompt,
                             placeholder="A woman walks through a sunlit market, smiling at the camera")
    c["negative_prompt"] = gr.Textbox(label="Negative prompt", lines=2, value=d.negative_prompt, max_lines=4)
    with gr.Row():
        c["variant"] = gr.Radio(["full", "lite"], value=d.variant, label="Variant",
                                info="full: ID + Ref adapters; lite: ID adapter only")
        c["seed"] = gr.Number(value=d.seed, precision=0, label="Seed")
    with gr.Accordion("Identity", open=True):
        gr.Markdown("The adapters act only in the step window, a fraction of the denoising steps (0-1 = all), "
                    "and only in the listed DiT blocks.")
        with gr.Row():
            c["id_scale"] = gr.Number(value=d.id_scale, label="ID scale", step=0.05)
            c["ref_scale"] = gr.Number(value=d.ref_scale, label="Ref scale (full only)", step=0.05,
                                       interactive=d.variant == "full")
        with gr.Row():
            c["step_window_start"] = gr.Slider(0, 1, value=d.step_window_start, step=0.05, label="Step window start")
            c["step_window_end"] = gr.Slider(0, 1, value=d.step_window_end, step=0.05, label="Step window end")
        blocks_info = f"empty = all; this model has blocks 0-{num_blocks - 1}" if num_blocks else "empty = all"
        c["blocks"] = gr.Textbox(value=d.blocks, label="Blocks", placeholder="e.g. 0-19 or 0,2,4", info=blocks_info)
    with gr.Accordion("Sampling", open=True):
        with gr.Row():
            c["sampler"] = gr.Radio(["unipc", "euler"], value=d.sampler, label="Sampler",
                                    info="unipc = the official sampler")
            c["num_inference_steps"] = gr.Number(value=d.num_inference_steps, precision=0, label="Steps")
        with gr.Row():
            c["cfg_scale"] = gr.Number(value=d.cfg_scale, label="Text guidance g", step=0.5)
            c["identity_guidance"] = gr.Checkbox(value=d.identity_guidance, label="Identity guidance",
                                                 info="off = two-branch guidance")
            c["cfg_scale_i"] = gr.Number(value=d.cfg_scale_i, label="gi", step=0.5)
        with gr.Row():
            c["height"] = gr.Number(value=d.height, precision=0, label="Height")
            c["width"] = gr.Number(value=d.width, precision=0, label="Width")
            c["num_frames"] = gr.Number(value=d.num_frames, precision=0, label="Frames")
            c["fps"] = gr.Number(value=d.fps, precision=0, label="FPS")
        with gr.Row():
            c["sigma_shift"] = gr.Number(value=d.sigma_shift, label="Sigma shift", step=0.5)
            c["face_similarity"] = gr.Checkbox(value=d.face_similarity, label="Face similarity in the report")
    with gr.Accordion("Models and memory", open=False):
        c["loras"] = gr.Textbox(value=d.loras, lines=2, label="LoRAs", placeholder="/path/lora.safetensors:0.8",
                                info="one PATH or PATH:ALPHA per line (files on this machine); changing them "
                                     "reloads the models")
        with gr.Row(visible=real_model):
            c["vram_limit"] = gr.Number(value=d.vram_limit, label="VRAM limit (GB, empty = none)")
            c["offload"] = gr.Checkbox(value=d.offload, label="Offload to CPU")
            c["fp8"] = gr.Checkbox(value=d.fp8, label="fp8 weights")
    for name, control in c.items():
        control.elem_id = "set-" + name.replace("_", "-")
    return c


def _settings(data: dict, controls: dict[str, Any]) -> JobSettings:
    return JobSettings.from_form({name: data[comp] for name, comp in controls.items()})


def _user_errors_to_ui(call, image=None):
    """Run ``call``; a user error becomes its sentence in the UI, anything else one line (details in the log).
    ``image``: the uploaded photo's temporary path, shown as the user's file name."""
    try:
        return call()
    except gr.Error:
        raise
    except USER_ERRORS as err:
        raise gr.Error(shown_name(str(err), image), duration=None, title="Check the settings",
                       print_exception=False) from None
    except Exception as err:  # noqa: BLE001 - the page shows one line, the console the traceback
        log.exception("app job failed")
        message = f"The job failed ({type(err).__name__}: {err}). The server console has the details."
        raise gr.Error(shown_name(message, image), duration=None, title="Job failed", print_exception=False) from None


def _status(job: JobResult) -> str:
    lines = [f"**Job {job.number} finished** in {job.seconds:.1f} s: `{job.paths['video']}`"]
    lines += [f"- {note}" for note in job.notes]
    return "\n".join(lines)


def _history_rows(runner: JobRunner) -> list[list]:
    return [[j.number, j.report.get("prompt", "")[:80], j.report.get("variant", ""),
             j.report.get("settings", {}).get("seed", ""), round(j.seconds, 1), str(j.paths["video"])]
            for j in reversed(runner.history)]
