"""``make demo``: the whole Lynx path on CPU in well under a minute, offline, on a public-domain face photo."""
from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path

REAL_COMMAND = (
    "diffsynth-ext generate --extension lynx --variant full --image face.jpg \\\n"
    "    --prompt \"A woman walks through a sunlit market, smiling at the camera\" \\\n"
    "    --adapters hub:full --output outputs/market.mp4            # Wan2.1-T2V-14B + official lynx_full\n"
    "    # on a 24 GB card add: --vram-limit 20  (and --fp8 to halve the CPU RAM it pins)"
)
NO_SIMILARITY = ("face similarity not measured: on the noise-like frames of an untrained tiny model it would mean "
                 "nothing")


def main(out_dir: str = "outputs/demo") -> int:
    t0 = time.perf_counter()
    from skimage import data
    from PIL import Image

    from .inference.tiny_preset import tiny_generator

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    face_path = out / "astronaut.png"  # scikit-image's astronaut: public domain (NASA)
    Image.fromarray(data.astronaut()).save(face_path)
    with contextlib.redirect_stdout(io.StringIO()):  # DiffSynth's loader is chatty
        gen = tiny_generator("full")
    gen.notes.append(NO_SIMILARITY)
    # No face similarity: the frames of an untrained model would give a number that means nothing. A trained
    # model's similarity is `diffsynth-ext eval` with the real recognisers.
    from .conditioners.standin import is_standin

    faces = ("STAND-IN face models (not face models; pip install dlib-bin face-recognition-models gives real ones)"
             if is_standin(gen.face) else f"real offline face models ({gen.face.detector.name} detector, "
             f"{gen.face.embedder.name} {gen.face.embedder.dim}-d embedder)")
    result = gen.generate(face_path, "an astronaut smiling at the camera, portrait", seed=42, progress=True,
                          face_similarity=False)
    paths = result.save(out / "lynx_demo.mp4", overwrite=True)
    took = time.perf_counter() - t0
    print(f"\nDone in {took:.1f} s. Outputs:")
    for name, path in paths.items():
        print(f"  {name:<14} {path}")
    print(f"\nThis was a TINY, UNTRAINED Wan with random Lynx adapters, conditioned by {faces}.\n"
          "It proves the installation and the whole code path (face detection, alignment, embedding,\n"
          "resampler, reference pass, three-branch guidance, UniPC sampling, video writing), not quality.\n"
          "The video is noise-like and no face\nsimilarity is reported: on such frames it would mean nothing.\n"
          "For the real model run:\n\n" + REAL_COMMAND)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
