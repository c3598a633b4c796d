"""Behaviour-identity check for engine refactors: same input + same settings -> byte-identical results.

    python bench/identity.py record  [--dir /tmp/identity-baseline] [--shared]   # before a change
    python bench/identity.py compare [--dir /tmp/identity-baseline] [--shared]   # after it: exit 1 on any change
    python bench/identity.py record --dir /tmp/identity-yunet --set detector=yunet   # another detector (or setting)

Every case runs the whole engine (plan -> redact segments -> stitch) on one clip with fixed settings in
OpenCV DNN (the engine's only runtime; deterministic), and writes one canonical JSON file: the per-frame
detections exactly as the segments' sidecar files hold them, and for every output frame its pts and a
SHA-256 of its decoded planes (visible pixels only, no line padding). ``compare`` reruns the cases and
compares those files byte for byte. The generated clips are written once into ``DIR/media`` and reused, so
a change to the clip generator cannot change the inputs under the check. ``--shared`` adds the evaluation
clips in /work/shared/media (read in place, never copied). Everything is written outside the repository.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = Path("/work/shared/media")

# name: make_clip arguments (small, short clips that reach every part of the engine)
CLIPS = {
    "big.mp4": dict(width=320, height=240, seconds=2.0, faces=1, face_size=(70, 90), audio="aac", seed=3),
    "small.mp4": dict(width=960, height=540, seconds=2.0, faces=4, face_size=(18, 36), gop=25, seed=1),
    "appear.mp4": dict(width=960, height=540, seconds=2.0, faces=2, face_size=(18, 22), appear=[31, 31],
                       seed=5, gop=30),
    "rot90.mov": dict(width=480, height=270, seconds=1.5, rotation=90, faces=2, face_size=(24, 60), seed=2),
    "vfr.mkv": dict(width=320, height=180, seconds=2.0, vfr=True, audio="opus", faces=1, seed=4),
}
SHARED_CLIPS = ["signer-closeup-640x480-30fps.mkv", "two-walkers-480x270.mp4", "parking-lot-audio-768x432.mp4"]

# run variants: (label, settings) applied to every clip; one worker with short segments (segment borders),
# two workers on one long segment (chunk borders inside a segment)
RUNS = [("w1-seg1", dict(workers=1, segment_seconds=1.0)),
        ("w2-seg60", dict(workers=2, segment_seconds=60.0))]
# extra cases: (clip, label, settings)
EXTRA = [("small.mp4", "w1-k6-t3-K24", dict(workers=1, segment_seconds=60.0, detect_every=6, track_every=3,
                                              fine_every=24)),
         ("appear.mp4", "w2-K24", dict(workers=2, segment_seconds=60.0, fine_every=24)),
         ("big.mp4", "w2-rekognition-video", dict(workers=2, segment_seconds=0.5, detector="rekognition-video"))]
FIXED = dict(crf=20, preset="veryfast")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_media(media: Path) -> dict[str, dict]:
    """The generated clips (and their ground truth), made once per baseline directory."""
    media.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, kw in CLIPS.items():
        path, truth = media / name, media / (name + ".truth.json")
        if not (path.is_file() and truth.is_file()):
            from testmedia import make_clip
            log(f"[identity] generating {name}")
            gt = make_clip(str(path), **kw)
            truth.write_text(json.dumps(gt))
        out[name] = json.loads(truth.read_text())
    return out


def faces_file(gt: dict, path: Path) -> str:
    """A ``redactor-faces/1`` file from a clip's ground truth, every 3rd frame (as a Rekognition Video job
    samples), so the precomputed-faces backend runs without AWS."""
    faces = {}
    w, h = gt["width"], gt["height"]
    for i, boxes in enumerate(gt["faces"]):
        if i % 3 or not boxes:
            continue
        t = round(float(gt["pts"][i]) * eval(gt["time_base"]) * 1000)  # noqa: S307 - our own "num/den"
        faces[str(t)] = [[b[0] / w, b[1] / h, b[2] / w, b[3] / h, 0.99] for b in boxes]
    path.write_text(json.dumps({"format": "redactor-faces/1", "job_id": "identity", "video": {},
                                "faces": faces, "summary": {"samples": len(faces)}}))
    return str(path)


def frame_hashes(path: str) -> tuple[list[str], list[int]]:
    """SHA-256 of every decoded frame's planes (visible samples only: rows may carry line padding)."""
    import av
    import numpy as np

    hashes, pts = [], []
    with av.open(path) as c:
        for f in c.decode(video=0):
            h = hashlib.sha256(f"{f.format.name} {f.width}x{f.height}".encode())
            wide = 2 if any(t in f.format.name for t in ("p10", "p12", "p16")) else 1  # bytes per sample
            for p in f.planes:
                rows = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)
                h.update(np.ascontiguousarray(rows[: p.height, : p.width * wide]).tobytes())
            hashes.append(h.hexdigest())
            pts.append(f.pts)
    return hashes, pts


def run_case(source: str, settings: dict, model_path: str, gt: dict | None, work: Path) -> dict:
    from redactor import Config, plan, redact_segments, stitch

    work.mkdir(parents=True, exist_ok=True)
    kw = dict(FIXED, model_path=model_path)
    kw.update(settings)
    if kw.get("detector") == "rekognition-video":
        kw["faces_path"] = faces_file(gt, work / "faces.json")
    config = Config(**kw)
    p = plan(source, config)
    results = redact_segments(source, p.segments, config, str(work / "segments"), source_info=p.source)
    out = str(work / "out.mp4")
    stitch(p, results, out, config)
    detections = []
    for r in sorted(results, key=lambda r: r.index):
        detections.extend(json.loads(Path(r.detections).read_text())["frames"])
    hashes, pts = frame_hashes(out)
    return {"segments": len(p.segments), "frames": len(hashes), "detections": detections,
            "frame_sha256": hashes, "pts": pts}


def cases(shared: bool):
    for name in CLIPS:
        for label, s in RUNS:
            yield name, label, s, False
    for name, label, s in EXTRA:
        yield name, label, s, False
    if shared:
        for name in SHARED_CLIPS:
            for label, s in RUNS:
                yield name, label, s, True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["record", "compare"])
    ap.add_argument("--dir", default="/tmp/identity-baseline")
    ap.add_argument("--shared", action="store_true", help="also the evaluation clips in /work/shared/media")
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting applied to every case (e.g. --set detector=yunet; record and compare "
                         "with the same --set and their own --dir), unless the case sets it itself")
    a = ap.parse_args(argv)
    from redactor.model import fetch_centerface

    model_path = str(fetch_centerface())
    common = dict(kv.split("=", 1) for kv in a.set)
    base = Path(a.dir)
    gts = make_media(base / "media")
    dest = base / ("baseline" if a.mode == "record" else "current")
    dest.mkdir(parents=True, exist_ok=True)
    changed, missing, same = [], [], []
    for name, label, settings, is_shared in cases(a.shared):
        case = f"{name}--{label}"
        if a.only and a.only not in case:
            continue
        source = str(SHARED / name) if is_shared else str(base / "media" / name)
        t0 = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix="identity-"))
        try:
            result = run_case(source, {**common, **settings}, model_path, None if is_shared else gts[name], work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        text = json.dumps(result, sort_keys=True, separators=(",", ":")).encode()
        (dest / f"{case}.json").write_bytes(text)
        digest = hashlib.sha256(text).hexdigest()[:16]
        nboxes = sum(len(d["boxes"]) for d in result["detections"])
        info = (f"{case:40s} frames={result['frames']:4d} segments={result['segments']:2d} "
                f"boxes={nboxes:5d} sha256={digest} ({time.perf_counter() - t0:.1f}s)")
        if a.mode == "compare":
            ref = base / "baseline" / f"{case}.json"
            if not ref.is_file():
                missing.append(case)
                info += "  NO BASELINE"
            elif ref.read_bytes() == text:
                same.append(case)
                info += "  identical"
            else:
                changed.append(case)
                old = json.loads(ref.read_bytes())
                diff = [k for k in sorted(set(old) | set(result)) if old.get(k) != result.get(k)]
                info += f"  CHANGED ({', '.join(diff)})"
        print(info, flush=True)
    if a.mode == "compare":
        print(f"identity: {len(same)} identical, {len(changed)} changed, {len(missing)} without baseline")
        return 1 if changed or missing else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
