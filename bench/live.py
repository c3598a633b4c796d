"""Live mode on this machine: ``redactor live`` on a 720p30 file read at its native rate (as a camera would
deliver it), cut into chunks at its keyframes, each redacted by the local pool and listed in the playlist.

    .venv/bin/python bench/live.py                      # 720p30, 24 s, 4 s chunks, all usable cores
    .venv/bin/python bench/live.py --seconds 12 --chunk-seconds 2 --width 1920 --height 1080
    options: --faces N --workers N --set KEY=VALUE (the engine's settings, repeatable)

Printed per chunk: its duration, the redaction time and its ratio to the duration (< 1: faster than real time),
the CPU-seconds it took over the cores' seconds of video (the ratio on idle cores, steadier than wall time when
other processes share them), and the latency: from the moment its last frame was read (at the native rate) to its entry in the playlist.
Also the stream's lag at the end (how far behind real time the playlist is). Writes bench/out/live.json.
Ratios only: wall times on a shared machine vary (the CPU used by other processes is printed beside).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers end with each chunk)."""
    import resource
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--seconds", type=float, default=24.0)
    ap.add_argument("--chunk-seconds", type=float, default=4.0)
    ap.add_argument("--faces", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args(argv)

    from redactor import Config
    from redactor.hls import PLAYLIST
    from redactor.live import LiveSettings, LocalStore, LocalStream, Publisher, run_stream

    scale = a.height / 1080
    fps = 30
    src, gt = common.clip("live", width=a.width, height=a.height, seconds=a.seconds, faces=a.faces,
                          face_size=(int(40 * scale), int(160 * scale)), audio="aac",
                          keyframes=list(range(0, int(a.seconds * fps), 2 * fps)))
    settings = dict(kv.split("=", 1) for kv in a.set)
    settings.update(workers=a.workers, model_path=common.ensure_model())
    config = Config.from_dict(settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as out:
        t0 = time.monotonic()
        busy0 = common.cpu_busy_seconds()
        media_end = [0.0]
        cpu = [cpu_seconds()]
        cores = common.machine_info()["usable_cores"]

        def on_chunk(o):
            media_end[0] += o.duration
            now = time.monotonic() - t0
            spent, cpu[0] = cpu_seconds() - cpu[0], cpu_seconds()
            rows.append({"chunk": o.name, "status": o.status, "duration": round(o.duration, 3),
                         "frames": o.frames, "redact_s": round(o.redact_seconds, 3),
                         "ratio": round(o.redact_seconds / o.duration, 3) if o.duration else None,
                         "listed_after_s": round(o.latency, 3), "cpu_s": round(spent, 2),
                         # CPU-seconds over the cores' seconds of video: the ratio on an idle machine
                         "cpu_ratio": round(spent / (o.duration * cores), 3) if o.duration else None,
                         # the chunk's last frame was read at media_end (native rate, from t0)
                         "latency_s": round(now - media_end[0], 3)})
            r = rows[-1]
            common.log(f"[live] {r['chunk']}: {r['status']}, {r['duration']:.2f}s of video redacted in "
                       f"{r['redact_s']:.2f}s (ratio {r['ratio']}; CPU {r['cpu_s']:.1f}s, ratio on idle cores "
                       f"{r['cpu_ratio']}), listed {r['latency_s']:.2f}s after its last frame was read")
        stream = LocalStream(Publisher(LocalStore(out), LiveSettings()), config, on_chunk=on_chunk)
        run_stream(stream, src, chunk_seconds=a.chunk_seconds, native_rate=True)
        wall = time.monotonic() - t0
        busy = common.cpu_busy_seconds() - busy0
        listed = (Path(out) / PLAYLIST).read_text().count("#EXTINF")
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    cpu_ratios = [r["cpu_ratio"] for r in rows if r["cpu_ratio"] is not None]
    lat = [r["latency_s"] for r in rows]
    result = {"clip": {"width": a.width, "height": a.height, "fps": fps, "seconds": a.seconds, "frames": gt["frames"]},
              "chunk_seconds": a.chunk_seconds, "workers": config.workers or "usable cores",
              "chunks": rows, "segments_listed": listed, "wall_s": round(wall, 2),
              "ratio_median": common.median(ratios), "ratio_max": max(ratios) if ratios else None,
              "cpu_ratio_median": common.median(cpu_ratios), "cpu_ratio_max": max(cpu_ratios) if cpu_ratios else None,
              "latency_median_s": round(common.median(lat), 2) if lat else None, "latency_max_s": max(lat) if lat else None,
              "lag_at_end_s": round(wall - a.seconds, 2), "cpu_busy_cores": round(busy / wall, 2) if wall else None,
              "machine": common.machine_info()}
    path = common.write_result("live", result)
    print(f"live {a.width}x{a.height}@{fps}, {a.seconds:g} s at native rate, {a.chunk_seconds:g} s chunks, "
          f"{len(rows)} chunks, {listed} segments listed")
    print(f"  redaction time / chunk duration: median {result['ratio_median']}, max {result['ratio_max']} "
          f"({'faster' if (result['ratio_max'] or 9) < 1 else 'NOT faster'} than real time)")
    print(f"  CPU-seconds / (chunk duration x {result['machine']['usable_cores']} cores), the ratio on idle cores: "
          f"median {result['cpu_ratio_median']}, max {result['cpu_ratio_max']}")
    print(f"  latency (last frame read -> listed): median {result['latency_median_s']}s, max "
          f"{result['latency_max_s']}s; playlist {result['lag_at_end_s']}s behind at the end")
    print(f"  CPU busy (all processes): {result['cpu_busy_cores']} cores of {result['machine']['usable_cores']}")
    print(f"  -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
