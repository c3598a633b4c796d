"""Throughput: redaction vs the physical floor (plain decode -> encode of the same clip, same encoder).

    .venv/bin/python bench/throughput.py            # 1080p30, 10 s, 4 faces 40-160 px, 2 rounds (A B, B A)
    .venv/bin/python bench/throughput.py --quick    # 2 s clip, 1 round
    .venv/bin/python bench/throughput.py --sizes 1920x1080,480x270,3840x2160 --compare detector=centerface
    options: --seconds S --reps N --width W --height H --faces N --gop N --encoder-threads T
             --set KEY=VALUE (the engine's settings, repeatable)
             --compare KEY=VALUE[,KEY=VALUE...] (another engine variant measured in the same rounds; repeatable)
             --sizes WxH,WxH (several clip sizes in one run, each with its own transcode; default --width/--height)

(A) transcode: PyAV decode (thread_type AUTO) -> libx264 with Config().crf/preset, x264-params bframes=0,
    same pixel format/time base as the engine writes, libx264 threads auto (both cores);
(B) redact_file(source, out, Config()) (default settings + --set: workers = usable cores);
(C...) the same with each --compare variant's settings on top of --set.
Each run is a fresh process; only the call is timed (imports before the clock). Runs alternate A B C / C B A.
Faces on a clip are 40-160 px wide at 1080p, scaled with the frame height at other sizes.
Target: redaction fps >= 0.75 x transcode fps (1080p). Also printed: the CPU-seconds ratio (transcode CPU /
redaction CPU), what cloud cost follows and steadier than wall time when other processes share the cores. Writes bench/out/throughput.json; exit code 0 regardless.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

TARGET = 0.75


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def measure_size(a, width: int, height: int, seconds: float, reps: int, variants: dict, cfg) -> dict:
    """Transcode and every engine variant on one generated clip of width x height, alternating."""
    scale = height / 1080
    src, gt = common.clip("throughput", width=width, height=height, fps=a.fps, seconds=seconds, faces=a.faces,
                          face_size=(40, 160) if height == 1080 else (max(12, round(40 * scale)),
                                                                      max(16, round(160 * scale))),
                          **({"gop": a.gop} if a.gop else {}))
    work = common.OUT / "throughput"
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{width}x{height}"

    def run_transcode():
        r = common.run_child({"mode": "transcode", "source": src, "output": str(work / f"transcode-{tag}.mp4"),
                              "crf": cfg.crf, "preset": cfg.preset, "threads": a.encoder_threads})
        common.log(f"[{tag} transcode] {r['frames']} frames {r['wall']:.2f}s = {r['fps']:.1f} fps "
                   f"(cpu {r['cpu_seconds']:.1f}s, other load {r['foreign_load_cores']} cores)")
        return r

    def redact(name, overrides):
        def run():
            r = common.run_child({"mode": "redact", "source": src, "output": str(work / f"redacted-{tag}.mp4"),
                                  "config": overrides, "report": str(work / f"redacted-{tag}.report.json")})
            common.log(f"[{tag} {name}] {r['frames']} frames {r['wall']:.2f}s = {r['fps']:.1f} fps "
                       f"(cpu {r['cpu_seconds']:.1f}s, other load {r['foreign_load_cores']} cores) "
                       f"stages {r['timings'].get('worker_stage_seconds')}")
            return r
        return run

    runs = common.alternate({"transcode": run_transcode,
                             **{name: redact(name, ov) for name, ov in variants.items()}}, reps)
    tw = common.median([r["wall"] for r in runs["transcode"]])
    frames = runs["transcode"][0]["frames"]
    out = {"clip": {"path": src, "width": width, "height": height, "frames": frames, "faces": a.faces, "gop": a.gop,
                    "face_widths": sorted(round(b[2] - b[0]) for b in gt["faces"][0])},
           "transcode_runs": runs["transcode"], "transcode_fps": frames / tw, "variants": {}}
    print(f"\nclip {Path(src).name}: {width}x{height} {frames} frames, faces {out['clip']['face_widths']} px wide, "
          f"keyframe every {a.gop or 'x264 default (250)'}; rounds={reps}")
    print(f"  (A) decode+encode : median {tw:.2f}s = {frames / tw:.1f} fps  runs "
          f"{[round(r['wall'], 2) for r in runs['transcode']]}  (libx264 crf={cfg.crf} preset={cfg.preset} "
          f"bframes=0 threads={a.encoder_threads or 'auto'}; cpu {runs['transcode'][-1]['cpu_seconds']:.1f}s)")
    for name in variants:
        rs = runs[name]
        rw = common.median([r["wall"] for r in rs])
        last = rs[-1]
        stages = last["timings"].get("worker_stage_seconds", {})
        per_frame = {k: round(1000 * v / frames, 1) for k, v in stages.items()}
        tcpu = common.median([r["cpu_seconds"] for r in runs["transcode"]])
        v = {"runs": rs, "fps": frames / rw, "ratio_median": tw / rw,
             "cpu_ratio": tcpu / common.median([r["cpu_seconds"] for r in rs]),
             "ratio_best": min(r["wall"] for r in runs["transcode"]) / min(r["wall"] for r in rs),
             "stage_ms_per_frame": per_frame, "peak_rss_per_worker_mb": last["peak_rss_per_worker_mb"],
             "cpu_seconds": last["cpu_seconds"], "counts": last["counts"], "workers": last["workers"]}
        out["variants"][name] = v
        print(f"  {name:18s}: median {rw:.2f}s = {v['fps']:.1f} fps = {v['ratio_median']:.2f}x (best-of "
              f"{v['ratio_best']:.2f}x; CPU-s ratio {v['cpu_ratio']:.2f}x)  cpu {v['cpu_seconds']:.1f}s, peak RSS/worker "
              f"{v['peak_rss_per_worker_mb']:.0f} MB, workers {v['workers']}")
        print(f"  {'':18s}  worker ms/frame: {per_frame} (sum {sum(per_frame.values()):.1f})")
    out["noise"] = common.noise_note(sum(runs.values(), []))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 s clip, 1 round")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 10, quick 2)")
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 2, quick 1)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--sizes", help="clip sizes WxH,WxH,... measured one after the other in this run")
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--gop", type=int, default=0,
                    help="keyframe every N frames in the generated clip (0: x264's default, 250; phones write ~1-2 s)")
    ap.add_argument("--encoder-threads", type=int, default=0, help="libx264 threads for the transcode (0=auto)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting to override, e.g. --set detect_every=3 (repeatable)")
    ap.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="another engine variant (on top of --set), e.g. --compare detector=centerface")
    a = ap.parse_args(argv)
    seconds = a.seconds or (2.0 if a.quick else 10.0)
    reps = a.reps or (1 if a.quick else 2)
    t_start = time.perf_counter()

    from redactor import Config
    overrides = dict(kv.split("=", 1) for kv in a.set)
    cfg = Config.from_dict(overrides)
    variants = {"redact": overrides}
    for spec in a.compare:
        extra = dict(kv.split("=", 1) for kv in spec.split(","))
        Config.from_dict({**overrides, **extra})  # a bad setting fails before anything runs
        variants["redact " + spec] = {**overrides, **extra}
    common.ensure_model()
    info = common.machine_info()
    sizes = [_size(s) for s in a.sizes.split(",")] if a.sizes else [(a.width, a.height)]
    print(f"default detector {cfg.detector}, inference {cfg.inference}; cores={info['usable_cores']}, "
          f"load average before {info.get('loadavg_before')}")
    results = [measure_size(a, w, h, seconds, reps, variants, cfg) for w, h in sizes]
    elapsed = time.perf_counter() - t_start
    result = {"sizes": results, "reps": reps, "machine": info, "config": cfg.to_dict(), "target": TARGET,
              "elapsed_seconds": elapsed}
    out = common.write_result("throughput", result)
    print(f"\nwrote {out} ({elapsed:.0f}s)")
    for r in results:
        c = r["clip"]
        ratios = ", ".join(f"{name} {v['ratio_median']:.2f}x ({v['fps']:.1f} fps; CPU-s {v['cpu_ratio']:.2f}x)"
                           for name, v in r["variants"].items())
        ok = r["variants"]["redact"]["ratio_median"] >= TARGET
        print(f"SUMMARY throughput {c['width']}x{c['height']}: decode+encode {r['transcode_fps']:.1f} fps; {ratios} "
              f"(target >= {TARGET}) -> {'OK' if ok else 'BELOW TARGET'}{r['noise']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
