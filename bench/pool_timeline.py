"""Where a redaction's wall time goes, per process: the parent's plan, pool start, each worker's model load
and chunks (wall and CPU seconds of that worker, frames decoded), the time a worker waits idle for the other,
the parent's concat of the chunk parts and its stitch. For the scaling target (w2 vs w1 pinned to one core).

    .venv/bin/python bench/pool_timeline.py --seconds 4 --gop 30 --set detector=yunet [--reps 2]

Each run is a fresh process (w1-pinned and w2 alternating); the engine is instrumented from outside (its
``run_chunk``, detector factory, ``_assemble`` and pool start are wrapped in this process; the forked workers
inherit the wrappers), so the engine's own code is what is timed. Prints, per run, a timeline and the loss
of w2 against a perfect halving of w1-pinned split into: fixed serial costs (before the first worker's first
chunk starts and after the last one ends), the split's extra work (sum of chunk CPU over w1's), imbalance
(idle core-seconds while the other worker still works) and contention (chunk wall over chunk CPU; CPU over
the same chunk alone, from ``scaling.py --chunk-model``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402


def child(spec: dict) -> dict:
    if spec.get("cpus"):
        os.sched_setaffinity(0, set(spec["cpus"]))
    import av  # noqa: F401
    import cv2  # noqa: F401
    import redactor.pipeline  # noqa: F401
    import redactor.segment as seg
    from redactor import Config, redact_file
    from redactor import pool as pool_mod
    marks: dict = {"assemble": []}
    now = time.perf_counter
    init_times: list = []

    orig_factory = seg.make_detector

    def factory(config, info):
        t0, c0 = now(), time.process_time()
        d = orig_factory(config, info)
        init_times.append((t0, now(), time.process_time() - c0))
        return d

    orig_run = seg.run_chunk

    def run_chunk(det, task, channel):
        t0, c0 = now(), time.process_time()
        r = orig_run(det, task, channel)
        r["_timeline"] = {"start": t0, "end": now(), "cpu": time.process_time() - c0, "pid": os.getpid(),
                          "init": init_times[-1] if init_times else None, "range": [task.start, task.end],
                          "decode_lo": task.lo, "frames_decoded": r["detector_stats"].get("frames_decoded"),
                          "calls": r["detector_stats"].get("calls")}
        init_times.clear()  # reported once, with the worker's first chunk
        return r

    orig_assemble = seg._assemble

    def assemble(source, segment, tasks, results, *a, **kw):
        marks.setdefault("chunks", []).extend(r["_timeline"] for r in results)
        t0 = now()
        out = orig_assemble(source, segment, tasks, results, *a, **kw)
        marks["assemble"].append((t0, now()))
        return out

    orig_start = pool_mod.WorkerPool._start

    def start(self):
        if not self._procs:
            marks["pool_start"] = now()
        orig_start(self)
        marks.setdefault("forked", now())

    seg.make_detector, seg.run_chunk, seg._assemble = factory, run_chunk, assemble
    pool_mod.WorkerPool._start = start
    cfg = Config.from_dict(spec["config"])
    b0 = common.cpu_busy_seconds()
    c0 = os.times()
    t0 = now()
    report = redact_file(spec["source"], spec["output"], cfg)
    t1 = now()
    c1 = os.times()
    b1 = common.cpu_busy_seconds()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) + (
        c1.children_system - c0.children_system)
    rel = lambda x: round(x - t0, 4)  # noqa: E731
    chunks = []
    for c in marks.get("chunks", []):
        init = c["init"]
        chunks.append({**c, "start": rel(c["start"]), "end": rel(c["end"]),
                       "init": None if init is None else [rel(init[0]), rel(init[1]), round(init[2], 4)]})
    return {"wall": t1 - t0, "cpu": cpu, "foreign_load_cores": round(max(0.0, (b1 - b0) - cpu) / (t1 - t0), 2),
            "plan": report["timings"].get("plan"), "stitch": report["timings"].get("stitch"),
            "pool_start": rel(marks["pool_start"]), "forked": rel(marks["forked"]),
            "assemble": [[rel(a), rel(b)] for a, b in marks["assemble"]], "chunks": chunks,
            "frames": report["counts"]["frames"]}


def run(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=str(common.ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"timeline child failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def describe(tag: str, r: dict) -> dict:
    ch = sorted(r["chunks"], key=lambda c: c["start"])
    first = min(c["start"] if c["init"] is None else c["init"][0] for c in ch)
    last = max(c["end"] for c in ch)
    workers: dict = {}
    for c in ch:
        workers.setdefault(c["pid"], []).append(c)
    busy = {pid: sum(c["end"] - c["start"] + (c["init"][1] - c["init"][0] if c["init"] else 0) for c in cs)
            for pid, cs in workers.items()}
    ends = {pid: max(c["end"] for c in cs) for pid, cs in workers.items()}
    idle = sum(last - e for e in ends.values())
    asm = sum(b - a for a, b in r["assemble"])
    common.log(f"[{tag}] wall {r['wall']:.2f}s cpu {r['cpu']:.2f}s other load {r['foreign_load_cores']} cores; plan "
               f"{r['plan']:.3f}s, pool fork {r['pool_start']:.3f}->{r['forked']:.3f}s, first worker busy at "
               f"{first:.3f}s, last chunk done {last:.3f}s, concat {asm:.3f}s, stitch {r['stitch']:.3f}s")
    for c in ch:
        init = c["init"]
        common.log(f"    pid {c['pid']} " + (f"model {init[0]:.3f}-{init[1]:.3f}s ({init[2]:.2f} CPU-s), " if init else "")
                   + f"chunk {c['range']} decode from {c['decode_lo']}: {c['start']:.3f}-{c['end']:.3f}s "
                   f"wall {c['end'] - c['start']:.2f}s cpu {c['cpu']:.2f}s (x{c['cpu'] / max(1e-9, c['end'] - c['start']):.2f}), "
                   f"decoded {c['frames_decoded']}, detector calls {c['calls']}")
    return {"wall": r["wall"], "cpu": r["cpu"], "serial_before": first, "serial_after": r["wall"] - last,
            "idle_core_s": idle, "chunk_cpu": sum(c["cpu"] for c in ch),
            "chunk_wall": sum(c["end"] - c["start"] for c in ch),
            "init_cpu": sum(c["init"][2] for c in ch if c["init"]),
            "init_wall": sum(c["init"][1] - c["init"][0] for c in ch if c["init"]),
            "decoded": sum(c["frames_decoded"] or 0 for c in ch), "busy": busy, "concat": asm,
            "load": r["foreign_load_cores"]}


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        print("RESULT " + json.dumps(child(json.loads(sys.argv[2]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--gop", type=int, default=0, help="keyframe every N frames (0: x264's default, 250)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)
    overrides = dict(kv.split("=", 1) for kv in a.set)
    common.ensure_model()
    src, _ = common.clip("scaling", width=a.width, height=a.height, seconds=a.seconds, faces=4,
                         face_size=(40, 160), **({"gop": a.gop} if a.gop else {}))
    work = common.OUT / "timeline"
    work.mkdir(parents=True, exist_ok=True)
    core = sorted(os.sched_getaffinity(0))[0]
    specs = {"w1-pinned": {"workers": 1, "cpus": [core]}, "w2": {"workers": 2}}
    res: dict = {k: [] for k in specs}
    for rep in range(a.reps):
        for tag in (list(specs) if rep % 2 == 0 else list(specs)[::-1]):
            s = specs[tag]
            r = run({"source": src, "output": str(work / f"{tag}.mp4"), "cpus": s.get("cpus"),
                     "config": {**overrides, "workers": s["workers"]}})
            res[tag].append(describe(tag, r))
    m = {k: {f: common.median([x[f] for x in v]) for f in ("wall", "cpu", "serial_before", "serial_after",
                                                           "idle_core_s", "chunk_cpu", "chunk_wall", "init_cpu",
                                                           "init_wall", "decoded", "concat", "load")}
         for k, v in res.items()}
    w1, w2 = m["w1-pinned"], m["w2"]
    ideal = w1["wall"] / 2
    print(f"clip {Path(src).name}, keyframe every {a.gop or 250}, settings {overrides}, {a.reps} round(s); "
          f"other load w1 {w1['load']} / w2 {w2['load']} cores")
    print(f"  w1-pinned: wall {w1['wall']:.2f}s cpu {w1['cpu']:.2f}s; serial before the chunk {w1['serial_before']:.2f}s "
          f"(model load {w1['init_wall']:.2f}s), after {w1['serial_after']:.2f}s; chunk cpu {w1['chunk_cpu']:.2f}s, "
          f"decoded {w1['decoded']:.0f}")
    print(f"  w2       : wall {w2['wall']:.2f}s cpu {w2['cpu']:.2f}s; serial before {w2['serial_before']:.2f}s "
          f"(model load {w2['init_wall'] / 2:.2f}s each), after {w2['serial_after']:.2f}s (concat "
          f"{w2['concat']:.2f}s); chunks cpu {w2['chunk_cpu']:.2f}s (x{w2['chunk_cpu'] / w1['chunk_cpu']:.3f} of w1's), "
          f"wall/cpu {w2['chunk_wall'] / w2['chunk_cpu']:.3f}; idle core-s {w2['idle_core_s']:.2f}; decoded {w2['decoded']:.0f}")
    print(f"  ratio {w1['wall'] / w2['wall']:.2f}x; w2 is {w2['wall'] - ideal:.2f}s over w1/2 ({ideal:.2f}s): fixed "
          f"serial {w2['serial_before'] + w2['serial_after'] - (w1['serial_before'] + w1['serial_after']) / 2:.2f}s, "
          f"split work {(w2['chunk_cpu'] - w1['chunk_cpu']) / 2:.2f}s, imbalance {w2['idle_core_s'] / 2:.2f}s, "
          f"chunk wall over cpu {(w2['chunk_wall'] - w2['chunk_cpu']) / 2 - (w1['chunk_wall'] - w1['chunk_cpu']) / 2:.2f}s "
          f"(halves of core-seconds; they add up to the excess only roughly)")
    common.write_result("pool_timeline", {"clip": src, "gop": a.gop, "settings": overrides, "runs": res, "median": m})
    return 0


if __name__ == "__main__":
    sys.exit(main())
