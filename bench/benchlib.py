"""Shared helpers for the benchmark scripts in bench/ (not part of the product).

* cached synthetic clips (``clip(...)``) under bench/out/media, with their ground truth beside them;
* every measured run happens in a fresh child process (``run_child``) so runs do not share caches, thread
  settings or memory high-water marks; the child times only the call itself (imports are done before the
  clock starts) and reports its own and its children's peak RSS (``getrusage``) plus per-worker peaks
  sampled from /proc (VmHWM);
* ``alternate`` runs A, B, A, B, ... to spread machine noise evenly over both sides;
* ``write_result`` writes bench/out/<name>.json.

Run ``python bench/common.py child '<json>'`` is the child entry point (used internally).
"""
from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # testmedia (the clip generator) is imported from the repository root
    sys.path.insert(0, str(ROOT))
OUT = BENCH / "out"
MEDIA = OUT / "media"
CACHE = OUT / "cache"
SHARED_MEDIA = Path("/work/shared/media")
PY = sys.executable


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ clips
def clip(name: str, **kw) -> tuple[str, dict]:
    """A synthetic clip (``testmedia.make_clip`` arguments) cached under bench/out/media by its
    arguments; returns (path, ground truth)."""
    spec = {"width": 1920, "height": 1080, "fps": 30, "seconds": 10.0, "faces": 4, "face_size": (40, 160),
            "preset": "veryfast", "crf": 23, "seed": 1}
    spec.update(kw)
    spec["face_size"] = list(spec["face_size"])
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    MEDIA.mkdir(parents=True, exist_ok=True)
    path = MEDIA / f"{name}-{spec['width']}x{spec['height']}-{spec['seconds']:g}s-{key}.mp4"
    truth = path.with_suffix(".truth.json")
    if path.is_file() and truth.is_file():
        return str(path), json.loads(truth.read_text())
    from testmedia import make_clip
    log(f"[bench] generating {path.name} ...")
    t0 = time.perf_counter()
    tmp = path.with_name(path.stem + ".partial.mp4")
    args = dict(spec)
    args["face_size"] = tuple(args["face_size"])
    gt = make_clip(tmp, **args)
    os.replace(tmp, path)
    gt["path"] = str(path)
    truth.write_text(json.dumps(gt))
    log(f"[bench]   {gt['frames']} frames in {time.perf_counter() - t0:.1f}s")
    return str(path), gt


def ensure_model() -> str:
    from redactor.model import fetch_centerface
    return str(fetch_centerface())


# ------------------------------------------------------------------------------------------------ stats
def median(xs):
    return statistics.median(xs) if xs else None


def fmt_s(x):
    return f"{x:.2f}s" if x is not None else "n/a"


def write_result(name: str, data: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    p = OUT / f"{name}.json"
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, p)
    return p


def machine_info() -> dict:
    info = {"cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0))}
    try:
        info["loadavg_before"] = os.getloadavg()
    except OSError:
        pass
    try:
        import av
        import cv2
        info.update(av=av.__version__, opencv=cv2.__version__)
    except Exception:
        pass
    try:
        info["git_head"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()
        info["git_dirty_files"] = len(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                                                     capture_output=True, text=True).stdout.splitlines())
    except Exception:
        pass
    return info


def noise_note(results) -> str:
    """A warning when other processes used a noticeable share of the CPU during some runs."""
    loads = [r.get("foreign_load_cores") or 0 for r in results]
    worst = max(loads) if loads else 0
    if worst >= 0.2:
        return f" [NOISY: other processes used up to {worst:.2f} cores during runs]"
    return ""


def alternate(runs: dict, reps: int, order=None):
    """Call runs[name]() for each name in ``order`` (A, B, A, B, ...), ``reps`` rounds; the round's order
    flips each time (A B, B A, ...) so neither side always goes first. Returns {name: [result, ...]}."""
    names = list(order or runs)
    out = {n: [] for n in names}
    for r in range(reps):
        seq = names if r % 2 == 0 else names[::-1]
        for n in seq:
            out[n].append(runs[n]())
    return out


# ------------------------------------------------------------------------------------------------ child runs
def run_child(spec: dict, timeout: float = 1800) -> dict:
    """Run one measurement in a fresh Python process; returns its result dict."""
    cmd = [PY, str(Path(__file__).resolve()), "child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec.get('mode')} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"child {spec.get('mode')} printed no result:\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def cpu_busy_seconds() -> float:
    """System-wide non-idle CPU seconds so far (from /proc/stat), to measure load from other processes."""
    try:
        f = open("/proc/stat").readline().split()[1:]
        v = [int(x) for x in f]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


class ChildRSSSampler:
    """Polls /proc for this process's children (the forked workers) and keeps each one's VmHWM (peak RSS).
    The exact maximum over reaped children is also available from getrusage(RUSAGE_CHILDREN)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _children(self):
        pids = set()
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            try:
                pids.update(int(p) for p in (task / "children").read_text().split())
            except OSError:
                pass
        return pids

    def _loop(self):
        while not self._stop.is_set():
            for pid in self._children():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            kb = int(line.split()[1])
                            self.peaks[pid] = max(self.peaks.get(pid, 0), kb)
                except OSError:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _child_main(spec: dict) -> dict:
    mode = spec["mode"]
    if spec.get("cpus"):
        os.sched_setaffinity(0, set(spec["cpus"]))
    # import everything the measured call needs before starting the clock (both sides alike)
    import av  # noqa: F401
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import redactor.blur  # noqa: F401
    import redactor.pipeline  # noqa: F401
    import redactor.segment  # noqa: F401
    from redactor import Config
    res: dict = {"mode": mode, "pid": os.getpid()}
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ChildRSSSampler() as sampler:
        b0 = cpu_busy_seconds()
        t0 = time.perf_counter()
        c0 = os.times()
        if mode == "redact":
            from redactor import redact_file
            cfg = Config.from_dict(spec.get("config") or {})
            report = redact_file(spec["source"], spec["output"], cfg, report_path=spec.get("report"))
            res["frames"] = report["counts"]["frames"]
            res["timings"] = report["timings"]
            res["counts"] = report["counts"]
            res["workers"] = cfg.effective_workers
        elif mode == "command":
            proc = subprocess.run(spec["argv"], capture_output=True, text=True)
            res["returncode"] = proc.returncode
            res["stderr_tail"] = proc.stderr[-1500:]
            res["stdout_tail"] = proc.stdout[-500:]
            res["frames"] = int(spec.get("frames", 0))
        elif mode == "transcode":
            res.update(transcode(spec["source"], spec["output"], crf=int(spec["crf"]), preset=spec["preset"],
                                 threads=int(spec.get("threads", 0)),
                                 decode_threads=int(spec.get("decode_threads", 0))))
        else:
            raise SystemExit(f"unknown mode {mode}")
        wall = time.perf_counter() - t0
        c1 = os.times()
        b1 = cpu_busy_seconds()
    res["wall"] = wall
    res["cpu_seconds"] = (c1.user - c0.user) + (c1.system - c0.system) + (
        c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    res["fps"] = res["frames"] / wall if wall > 0 else None
    # cores' worth of CPU used by *other* processes during the run (shared machine noise indicator)
    res["foreign_load_cores"] = round(max(0.0, (b1 - b0) - res["cpu_seconds"]) / wall, 2) if wall > 0 else None
    res["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["self_maxrss_before_mb"] = base_rss / 1024
    res["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res["worker_hwm_mb"] = sorted(round(v / 1024, 1) for v in sampler.peaks.values())
    # peak RSS of one worker: the forked workers (the engine always forks, even for workers=1); this
    # process only if no worker was sampled
    res["peak_rss_per_worker_mb"] = res["children_maxrss_mb"] if sampler.peaks else res["self_maxrss_mb"]
    return res


def transcode(source: str, output: str, crf: int, preset: str, threads: int = 0, decode_threads: int = 0) -> dict:
    """Plain decode -> encode with the engine's encoder settings (libx264, crf, preset, bframes=0, same
    pixel format and time base); the floor for any redaction that re-encodes. threads=0: libx264 auto."""
    import av
    stage = {"decode": 0.0, "encode": 0.0}
    inp = av.open(source)
    out = None
    n = 0
    try:
        vs = inp.streams.video[0]
        vs.thread_type = "AUTO"
        vs.codec_context.thread_count = decode_threads
        # the engine's own encoder set-up, so (A) and (B) encode with exactly the same settings
        from redactor import Config
        from redactor.probe import probe
        from redactor.chunk import encoder_format, open_encoder
        info = probe(source)[0]
        out, os_ = open_encoder(output, info, Config(crf=crf, preset=preset).encoding, encoder_format(info), threads,
                                 info.color_range)
        it = inp.decode(vs)
        while True:
            t = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                break
            finally:
                stage["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            for pkt in os_.encode(frame):
                out.mux(pkt)
            stage["encode"] += time.perf_counter() - t
            n += 1
        t = time.perf_counter()
        for pkt in os_.encode():
            out.mux(pkt)
        stage["encode"] += time.perf_counter() - t
    finally:
        if out is not None:
            out.close()
        inp.close()
    return {"frames": n, "stage_seconds": {k: round(v, 3) for k, v in stage.items()},
            "encoder": {"crf": crf, "preset": preset, "threads": threads or "auto", "bframes": 0}}


def count_frames(path: str) -> int:
    import av
    with av.open(path) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        sys.path.insert(0, str(ROOT))
        result = _child_main(json.loads(sys.argv[2]))
        print("RESULT " + json.dumps(result), flush=True)
    else:
        print(__doc__)


class LocalChannel:
    """A stand-in for the pool's ``redactor.pool.Channel`` for chunks run one after the other in this process:
    what a chunk publishes is there for the chunks run after it; ``fetch`` never waits."""

    def __init__(self):
        self.shared: dict = {}

    def progress(self, n: int) -> None:
        pass

    def publish(self, items: dict) -> None:
        self.shared.update(items)

    def fetch(self, keys: list, wait: bool = False) -> dict:
        return {k: self.shared[k] for k in keys if k in self.shared}


HAND_CHECKED = BENCH / "precision_faces.json"


def hand_checked(label: str) -> dict:
    """The face boxes checked by eye on sampled frames of a real clip (``precision_faces.json``, how they were
    checked is written there): {frame: (n, 4) array} on its checked frames ({} if none)."""
    import numpy as np

    if not HAND_CHECKED.is_file():
        return {}
    clip = json.loads(HAND_CHECKED.read_text())["clips"].get(label)
    if not clip:
        return {}
    return {int(f): np.asarray(clip["faces"].get(str(f), []), np.float32).reshape(-1, 4) for f in clip["checked"]}


def grow(boxes, factor: float):
    """Boxes (x1, y1, x2, y2) grown ``factor`` times about their centres."""
    import numpy as np

    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    c = (b[:, :2] + b[:, 2:]) / 2
    half = (b[:, 2:] - b[:, :2]) * factor / 2
    return np.concatenate([c - half, c + half], axis=1)


def inside(points, boxes):
    """[i, j]: point i lies inside box j."""
    import numpy as np

    if len(points) == 0 or len(boxes) == 0:
        return np.zeros((len(points), len(boxes)), bool)
    return ((points[:, None, 0] >= boxes[None, :, 0]) & (points[:, None, 0] <= boxes[None, :, 2]) &
            (points[:, None, 1] >= boxes[None, :, 1]) & (points[:, None, 1] <= boxes[None, :, 3]))


def face_near(regions, faces, near_grow: float):
    """Which ``regions`` (x1, y1, x2, y2) have a face near: a face centre inside the region, or the region's
    centre inside a face grown ``near_grow`` times."""
    import numpy as np

    regions = np.asarray(regions, np.float32).reshape(-1, 4)
    faces = np.asarray(faces, np.float32).reshape(-1, 4)
    fc = (faces[:, :2] + faces[:, 2:]) / 2
    rc = (regions[:, :2] + regions[:, 2:]) / 2
    return inside(fc, regions).any(axis=0) | inside(rc, grow(faces, near_grow)).any(axis=1)
