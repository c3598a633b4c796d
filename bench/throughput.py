"""Throughput: redaction vs the physical floor (plain decode -> encode of the same clip, same encoder).

    .venv/bin/python bench/throughput.py            # 1080p30, 10 s, 4 faces 40-160 px, 2 rounds (A B, B A)
    .venv/bin/python bench/throughput.py --quick    # 2 s clip, 1 round
    options: --seconds S --reps N --width W --height H --faces N --encoder-threads T

(A) transcode: PyAV decode (thread_type AUTO) -> libx264 with Config().crf/preset, x264-params bframes=0,
    same pixel format/time base as the engine writes, libx264 threads auto (both cores);
(B) redact_file(source, out, Config()) (default settings: workers = usable cores).
Each run is a fresh process; only the call is timed (imports before the clock). Runs alternate A B / B A.
Target: redaction fps >= 0.75 x transcode fps. Writes bench/out/throughput.json; exit code 0 regardless.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

TARGET = 0.75


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s clip, 1 round")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 10, quick 2)")
    ap.add_argument("--reps", type=int, default=None, help="rounds of A+B (default 2, quick 1)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--encoder-threads", type=int, default=0, help="libx264 threads for the transcode (0=auto)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting to override, e.g. --set detect_every=3 (repeatable)")
    a = ap.parse_args(argv)
    seconds = a.seconds or (2.0 if a.quick else 10.0)
    reps = a.reps or (1 if a.quick else 2)
    t_start = time.perf_counter()

    from redactor import Config
    overrides = dict(kv.split("=", 1) for kv in a.set)
    cfg = Config.from_dict(overrides)
    common.ensure_model()
    src, gt = common.clip("throughput", width=a.width, height=a.height, fps=a.fps, seconds=seconds,
                          faces=a.faces, face_size=(40, 160))
    work = common.OUT / "throughput"
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine_info()

    def run_transcode():
        r = common.run_child({"mode": "transcode", "source": src, "output": str(work / "transcode.mp4"),
                              "crf": cfg.crf, "preset": cfg.preset, "threads": a.encoder_threads})
        common.log(f"[A transcode] {r['frames']} frames {r['wall']:.2f}s = {r['fps']:.1f} fps "
                   f"(cpu {r['cpu_seconds']:.1f}s, other load {r['foreign_load_cores']} cores)")
        return r

    def run_redact():
        r = common.run_child({"mode": "redact", "source": src, "output": str(work / "redacted.mp4"),
                              "config": overrides, "report": str(work / "redacted.report.json")})
        common.log(f"[B redact]    {r['frames']} frames {r['wall']:.2f}s = {r['fps']:.1f} fps "
                   f"(cpu {r['cpu_seconds']:.1f}s, other load {r['foreign_load_cores']} cores) stages {r['timings'].get('worker_stage_seconds')}")
        return r

    runs = common.alternate({"transcode": run_transcode, "redact": run_redact}, reps)
    tw = common.median([r["wall"] for r in runs["transcode"]])
    rw = common.median([r["wall"] for r in runs["redact"]])
    frames = runs["redact"][0]["frames"]
    t_fps, r_fps = frames / tw, frames / rw
    ratio = r_fps / t_fps
    best_ratio = min(r["wall"] for r in runs["transcode"]) / min(r["wall"] for r in runs["redact"])
    last = runs["redact"][-1]
    stages = last["timings"].get("worker_stage_seconds", {})
    timings = {k: v for k, v in last["timings"].items() if k != "worker_stage_seconds"}
    workers = last["workers"]

    print(f"clip: {Path(src).name} {gt['width']}x{gt['height']} {frames} frames, {a.faces} faces "
          f"{sorted(b[2] - b[0] for b in gt['faces'][0])} px wide; rounds={reps}; cores={info['usable_cores']}")
    print(f"(A) decode+encode  : median {tw:.2f}s = {t_fps:.1f} fps   runs {[round(r['wall'], 2) for r in runs['transcode']]}"
          f"  (libx264 crf={cfg.crf} preset={cfg.preset} bframes=0 threads="
          f"{a.encoder_threads or 'auto'}; stage s {runs['transcode'][-1]['stage_seconds']})")
    print(f"(B) redact_file    : median {rw:.2f}s = {r_fps:.1f} fps   runs {[round(r['wall'], 2) for r in runs['redact']]}"
          f"  (workers={workers}, peak RSS/worker {last['peak_rss_per_worker_mb']:.0f} MB)")
    print(f"engine timings (last run, wall s): {timings}")
    tot = sum(stages.values()) or 1.0
    print("engine per-stage seconds (summed over workers): " +
          ", ".join(f"{k} {v:.2f} ({100 * v / tot:.0f}%)" for k, v in stages.items()))
    per_frame = {k: round(1000 * v / frames, 2) for k, v in stages.items()}
    print(f"engine per-stage ms/frame (worker time): {per_frame}; counts: {last['counts']}")
    elapsed = time.perf_counter() - t_start
    result = {"clip": {"path": src, "width": gt["width"], "height": gt["height"], "frames": frames,
                       "faces": a.faces}, "reps": reps, "machine": info, "config": cfg.to_dict(),
              "transcode_runs": runs["transcode"], "redact_runs": runs["redact"],
              "transcode_fps": t_fps, "redact_fps": r_fps, "ratio_median": ratio, "ratio_best": best_ratio,
              "target": TARGET, "meets_target": ratio >= TARGET, "engine_stage_seconds": stages,
              "engine_timings": timings, "elapsed_seconds": elapsed}
    noise = common.noise_note(runs["transcode"] + runs["redact"])
    result["noise"] = noise
    out = common.write_result("throughput", result)
    print(f"wrote {out} ({elapsed:.0f}s)")
    print(f"SUMMARY throughput: redaction {r_fps:.1f} fps = {ratio:.2f}x of decode+encode {t_fps:.1f} fps "
          f"(best-of ratio {best_ratio:.2f}x; target >= {TARGET}) -> {'OK' if ratio >= TARGET else 'BELOW TARGET'}{noise}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
