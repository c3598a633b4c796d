"""The default engine of this checkout against another checkout's, on the same clips: each run a fresh
``redactor redact`` process, the two sides interleaved (A B, B A, A B, ...) so machine noise falls on both.

    .venv/bin/python bench/ab_speed.py --other /work/main/.venv/bin/python            # 5 rounds
    .venv/bin/python bench/ab_speed.py --other OTHER_PYTHON --rounds 7 --clip PATH    # a clip (repeatable)

``--other``: the Python of the other checkout's environment (its editable install is the engine it runs).
Per clip: the median wall seconds and CPU seconds (the process and its workers, ``os.wait4``) of each side and
their ratio (this checkout / other). Without ``--clip``: bench's generated 1080p30 4 s clip with four faces and
the shared wearable clip.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import SHARED_MEDIA, clip, log


def one_run(python: str, path: str, out: str) -> tuple[float, float]:
    """(wall s, CPU s) of one ``redactor redact`` of ``path`` in a fresh process of ``python``."""
    t0 = time.perf_counter()
    p = subprocess.Popen([python, "-m", "redactor.cli", "redact", path, "-o", out, "-q"])
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{python} failed on {path}")
    return wall, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clip", action="append")
    a = ap.parse_args()
    clips = a.clip or [clip("ab", seconds=4.0)[0], str(SHARED_MEDIA / "wearable-kitchen-2560x1920-10fps.mp4")]
    sides = {"this": sys.executable, "other": a.other}
    with tempfile.TemporaryDirectory() as tmp:
        for path in clips:
            got = {k: [] for k in sides}
            for r in range(a.rounds):
                for k in (("this", "other") if r % 2 == 0 else ("other", "this")):
                    got[k].append(one_run(sides[k], path, os.path.join(tmp, "o.mp4")))
                    log(f"[ab] {os.path.basename(path)} round {r + 1} {k}: wall {got[k][-1][0]:.2f} s, "
                        f"CPU {got[k][-1][1]:.2f} s")
            med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in got.items()}
            print(f"{os.path.basename(path)}: {a.rounds} rounds; wall {med['this'][0]:.2f} vs {med['other'][0]:.2f} s "
                  f"(ratio {med['this'][0] / med['other'][0]:.3f}); CPU {med['this'][1]:.2f} vs "
                  f"{med['other'][1]:.2f} s (ratio {med['this'][1] / med['other'][1]:.3f})", flush=True)


if __name__ == "__main__":
    main()
