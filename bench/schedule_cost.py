"""What the time-based schedule costs at 30 fps: the same clip redacted side by side in one run with the
schedule fixed in frames (A: ``detect_every=3 fine_every=30``) and with today's default in time
(B: ``detect_ms=100 fine_ms=1000``, which is k=3 / K=30 at 30 fps). Must not be slower.

    .venv/bin/python bench/schedule_cost.py            # 1080p30, 4 s, 4 faces 40-160 px, 2 rounds (A B, B A)
    .venv/bin/python bench/schedule_cost.py --quick    # 2 s, 1 round
    options: --seconds S --reps N --width W --height H --fps F --faces N --set KEY=VALUE (both sides)

Each run is a fresh process (bench/common.run_child; only the call is timed), alternating A B / B A. Printed:
wall and CPU time per side (median), B/A ratios (> 1: the time-based schedule is slower), and per side the
frames the detector ran on (``counts.detected_frames``) and its inference calls (``detector.calls``: coarse,
fine, track windows, context samples; equal apart from the coarse samples the edge carry reads across cuts,
``Schedule.edge_reach``). The summary says SLOWER when B's median wall time is over 1.05x A's (run-to-run
noise on this shared machine is a few %). Writes bench/out/schedule_cost.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

FRAMES = {"detect_every": "3", "fine_every": "30"}  # the same schedule, fixed in frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s clip, 1 round")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 4, quick 2)")
    ap.add_argument("--reps", type=int, default=None, help="rounds of A+B (default 2, quick 1)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting for both sides, e.g. --set detector=yunet (repeatable)")
    a = ap.parse_args(argv)
    seconds = a.seconds or (2.0 if a.quick else 4.0)
    reps = a.reps or (1 if a.quick else 2)
    t_start = time.perf_counter()
    common.ensure_model()
    common_set = dict(kv.split("=", 1) for kv in a.set)
    sides = {"frames": {**common_set, **FRAMES}, "time": dict(common_set)}
    from redactor import Config
    for name, settings in sides.items():
        s = Config.from_dict(settings).schedule_for(a.fps)
        common.log(f"[{name}] schedule at {a.fps:g} fps: coarse every {s.every}, fine every {s.fine}, "
                   f"track every {s.track}, context {s.context}")
    src, gt = common.clip("throughput", width=a.width, height=a.height, fps=a.fps, seconds=seconds,
                          faces=a.faces, face_size=(40, 160))
    work = common.OUT / "schedule_cost"
    work.mkdir(parents=True, exist_ok=True)

    def runner(name):
        def run():
            r = common.run_child({"mode": "redact", "source": src, "output": str(work / f"{name}.mp4"),
                                  "config": sides[name], "report": str(work / f"{name}.report.json")})
            rep = json.loads((work / f"{name}.report.json").read_text())
            r["detector_calls"] = rep["detector"].get("calls")
            common.log(f"[{name}] {r['frames']} frames {r['wall']:.2f}s (cpu {r['cpu_seconds']:.1f}s, other load "
                       f"{r['foreign_load_cores']} cores) detected frames {r['counts']['detected_frames']}, "
                       f"detector calls {r['detector_calls']}")
            return r
        return run

    runs = common.alternate({n: runner(n) for n in sides}, reps)
    med = {n: {"wall": common.median([r["wall"] for r in rs]), "cpu": common.median([r["cpu_seconds"] for r in rs])}
           for n, rs in runs.items()}
    wall_ratio = med["time"]["wall"] / med["frames"]["wall"]
    cpu_ratio = med["time"]["cpu"] / med["frames"]["cpu"]
    frames = runs["time"][0]["frames"]
    noise = common.noise_note(runs["frames"] + runs["time"])
    print(f"clip: {Path(src).name} {gt['width']}x{gt['height']} {a.fps:g} fps {frames} frames, {a.faces} faces; "
          f"rounds={reps}; settings for both: {common_set or 'defaults'}")
    for n, label in (("frames", "A frames (detect_every=3 fine_every=30)"), ("time", "B time (default ms)")):
        rs = runs[n]
        print(f"{label:42s}: wall median {med[n]['wall']:.2f}s {[round(r['wall'], 2) for r in rs]}, cpu median "
              f"{med[n]['cpu']:.1f}s, detected frames {rs[0]['counts']['detected_frames']}, detector calls "
              f"{sorted({r['detector_calls'] for r in rs})}")
    result = {"clip": src, "frames": frames, "reps": reps, "settings": sides, "runs": runs, "median": med,
              "wall_ratio_time_vs_frames": wall_ratio, "cpu_ratio_time_vs_frames": cpu_ratio,
              "machine": common.machine_info(), "noise": noise, "elapsed_seconds": time.perf_counter() - t_start}
    out = common.write_result("schedule_cost", result)
    print(f"wrote {out}")
    print(f"SUMMARY schedule_cost: time-based / frame-based at {a.fps:g} fps: wall {wall_ratio:.3f}x, cpu "
          f"{cpu_ratio:.3f}x; detector calls {runs['time'][0]['detector_calls']} vs "
          f"{runs['frames'][0]['detector_calls']} -> {'OK' if wall_ratio <= 1.05 else 'SLOWER'}{noise}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
