"""``python -m lynx_ext.parity DIR [DIR ...]``: exit 0 only if every output of every folder is within tolerance
(1: an output is not; 2: a folder is not a usable fixture folder, with a one-line reason)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lynx_ext.parity", description=__doc__)
    parser.add_argument("folders", nargs="+", help="fixture folders (layout of lynx_official_tiny/{full,lite})")
    args = parser.parse_args(argv)
    import contextlib
    import io

    from ..errors import LynxError
    from .runner import format_table, run_parity

    ok, bad_input = True, False
    for folder in args.folders:
        print(f"== {folder}")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the host's loaders are chatty
                rows = run_parity(folder)
        except LynxError as err:  # bad input: what was wrong and what to do
            print(f"error: {err}")
            ok, bad_input = False, True
            continue
        except Exception as err:  # noqa: BLE001 - report, never a silent pass
            print(f"ERROR: {type(err).__name__}: {err}")
            ok = False
            continue
        print(format_table(rows))
        ok = ok and bool(rows) and all(r.passed for r in rows)
    return 2 if bad_input else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
