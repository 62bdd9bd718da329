"""``diffsynth-ext app --extension lynx [model options] [--host H] [--port P] [--share]``: the local web app.

The model options are ``generate``'s. Without any of ``--model-paths``, ``--model-id-with-origin-paths``,
``--tokenizer-path``, ``--adapters`` or ``--face-models`` (or an explicit ``--preset``) the app runs the offline
tiny preset. The models load once, before the server starts, and every job reuses them.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from .common import Parser, add_alias_flag, add_version_flag, run_command
from .generate import add_model_arguments, check_model_options, load_generator

LOOPBACK = ("127.0.0.1", "localhost", "::1")
EPILOG = """examples:
  diffsynth-ext app --extension lynx                                   # offline tiny preset on http://127.0.0.1:7860
  diffsynth-ext app --extension lynx --model-paths dit.safetensors --model-paths t5.pth --model-paths vae.pth \\
      --tokenizer-path google/umt5-xxl --adapters lynx_full/ --face-models ~/models/faces --vram-limit 20 --fp8
  diffsynth-ext app --extension lynx --port 8080 --output-dir ~/lynx_videos
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="diffsynth-ext app --extension lynx", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               description="A local web app (Gradio) for Lynx: upload a face, check the detected face and crops, "
                           "queue generations, watch progress, get the outputs.")
    add_model_arguments(p, preset_default=None)
    srv = p.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 = every network "
                          "interface, without authentication)")
    srv.add_argument("--port", type=int, default=None, help="default: the first free port from 7860")
    srv.add_argument("--share", action="store_true",
                     help="also open a public gradio.live link (needs internet; anyone with the link can use the app)")
    add_alias_flag(srv, "--max-queue", type=int, default=16, help="jobs that may wait in the queue (default 16)")
    add_alias_flag(srv, "--output-dir", default="outputs/app", help="where each job's files go (default outputs/app)")
    p.add_argument("--quiet", action="store_true", help="no DiffSynth loader messages")
    add_version_flag(p)
    return p


def resolve_preset(args) -> str:
    """An explicit ``--preset`` wins; real model options mean the 14B model; nothing means the tiny preset."""
    if args.preset:
        return args.preset
    real = (args.model_paths, args.model_id_with_origin_paths, args.tokenizer_path, args.adapters, args.face_models)
    return "wan2.1-t2v-14b" if any(real) else "tiny"


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), "stopped")


def check_server_options(args) -> Path:
    """Refuse a bad port, queue size or output folder before any model loads; returns the output folder."""
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}.")
    if args.max_queue < 1:
        raise ValueError(f"--max-queue must be at least 1, got {args.max_queue}.")
    if args.port is not None:
        check_port_free(args.host, args.port)
    out = Path(args.output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output-dir {out} is a file; give a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--output-dir {out} cannot be created ({err.strerror}); give a writable folder.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--output-dir {out} is not writable; give a writable folder.")
    return out


def build_runner(args, output_dir: Path):
    """Load the models the options describe (once) and return ``(runner, form defaults, preset)``."""
    from ..app import GeneratorCache, JobRunner, JobSettings

    preset = resolve_preset(args)
    first = JobSettings.defaults(args.variant, loras="\n".join(args.lora), vram_limit=args.vram_limit,
                                 offload=args.offload, fp8=args.fp8)
    key = first.model_key()  # LoRA files and memory options checked before loading

    def load(k):  # --adapters belongs to --variant; the other variant gets its default adapters
        adapters = args.adapters if k.variant == args.variant else None
        return load_generator(args, preset=preset, variant=k.variant, lora=list(k.loras), vram_limit=k.vram_limit,
                              offload=k.offload, fp8=k.fp8, adapters=adapters)

    cache = GeneratorCache(load)
    print(f"loading models ({preset}, {args.variant}) ...", flush=True)
    gen = cache.get(key)
    defaults = JobSettings.defaults(args.variant, gen.preset, loras=first.loras,
                                    vram_limit=args.vram_limit, offload=args.offload, fp8=args.fp8)
    return JobRunner(cache, output_dir), defaults, preset


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` for a moment, as the server will, so a taken port is refused before any model loads."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as err:
        raise ValueError(f"Cannot listen on {host}:{port} ({err.strerror or err}); choose another --port, or stop "
                         "what uses it.") from None


def run(args) -> int:
    out = check_server_options(args)
    check_model_options(argparse.Namespace(**{**vars(args), "preset": resolve_preset(args)}))  # named as flags
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local app: no calls home
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("error: the app needs Gradio; in the lynx-ext checkout run: pip install -c constraints.txt -e '.[app]'",
              file=sys.stderr)
        return 2
    from ..app.layout import build_app, theme

    runner, defaults, preset = build_runner(args, out)
    gen = runner.cache.generator
    app = build_app(runner, defaults, real_model=preset != "tiny", intro=_intro(preset, gen, out),
                    preset=gen.preset)
    app.queue(max_size=args.max_queue, default_concurrency_limit=1)
    if args.host not in LOOPBACK:
        print(f"note: listening on {args.host}: every machine that can reach this one can use the app and read its "
              "outputs (there is no authentication).", file=sys.stderr)
    try:  # Gradio's own banner is off: its hint names launch(share=True), where this command takes --share
        app.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(out)],
                   theme=theme(), ssr_mode=False, show_error=False, quiet=True, prevent_thread_lock=True)
    except OSError as err:  # e.g. no free port from 7860 on, or taken since the check
        raise ValueError(f"Cannot listen on {args.host} ({err}); choose another --port.") from None
    print(banner(app.local_url, args.share, app.share_url), flush=True)
    app.block_thread()
    return 0


def banner(local_url: str, share: bool, share_url: Optional[str]) -> str:
    """Where the app is, in this command's words (``--share``, not Gradio's ``launch(share=True)``)."""
    lines = [f"* Running on local URL:  {local_url}"]
    if share_url:  # Gradio has printed "* Running on public URL: ..."
        lines.append("* Anyone with the public link can use the app while it runs.")
    elif share:
        lines.append("* --share: no public link could be made (see above); the app runs on this machine only.")
    else:
        lines.append("* For a public gradio.live link, start the app with --share (anyone with the link can use it).")
    return "\n".join(lines)


def _intro(preset: str, gen, out: Path) -> str:
    shown = out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out
    where = f"Outputs go to `{shown}`."
    if preset == "tiny":
        from ..conditioners.standin import is_standin

        if is_standin(gen.face):
            faces = ("**stand-in face models** (not face models: the box is fixed and no face similarity is "
                     "measured; `pip install dlib-bin face-recognition-models` gives real ones)")
        else:
            faces = (f"real offline face models (`{gen.face.detector.name}` detector, `{gen.face.embedder.name}` "
                     f"{gen.face.embedder.dim}-d embedder)")
        return (f"**Offline tiny preset**: a tiny *untrained* Wan with random adapters and {faces}. It proves the "
                "installation and the whole path; its videos are noise-like, so a face similarity measured on them "
                "means nothing. Launch with `--model-paths`, `--adapters` and `--face-models` for the 14B model. "
                + where)
    return f"Base model `{preset}`, adapters `{gen.adapter_source}`, device `{gen.pipe.device}`. " + where
