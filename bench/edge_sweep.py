"""Turned, half and profile faces crossing the frame's edge: the engine end to end on a sweep of generated
edge clips, with each of the box rules on or off, against ground truth, and what it blurs.

    .venv/bin/python bench/edge_sweep.py                          # every rule (the engine as it is)
    .venv/bin/python bench/edge_sweep.py --rules none             # none of them (the engine without these rules)
    .venv/bin/python bench/edge_sweep.py --rules widen=0.8,bridge --clips prof --set detector=yunet
    .venv/bin/python bench/edge_sweep.py --clips shared           # the shared clips: blurred area only

Rules (``--rules``, comma separated; default all): ``widen=A`` boxes narrower than A x their height widened to it
(the detector's ``FRONTAL_ASPECT``; ``widen`` alone: the detector's own), ``sym`` the widening on both sides
whatever the landmarks, ``part`` a box at the edge smaller than its pair is a part of the face
(``coverage.EDGE_PART_RATIO``; off: the old size-ratio rule only), ``bridge`` a face missed on one sample is
covered half way (``coverage._bridged``).

Clips (``--clips``, cached in bench/out/media/edges): ``std`` 72 clips (320x180, two 56 px faces crossing
through every edge: 5/10/15/30 fps x horizontal/vertical x 0.5/1 face width per frame x (half, frontal),
(frontal, half), (half, squeezed), (squeezed, frontal), and 0.25 at 30 fps); ``prof`` 32 clips with a real
profile photo (testmedia's ``profile``/``profile-left`` looks); ``shared`` the clips in ../shared/media (no
ground truth: area only). Per clip: every visible ground-truth face (>= 4 px each way) is checked by pixels as
tests/test_low_fps_edges.py does (its centre 60 % keeps < 25 % of its high-frequency energy), and the area
blurred is the union of the rectangles the engine actually redacted on every frame (the clipped, enlarged
boxes; the ellipse inside them is smaller), as % of all frames' area. Writes bench/out/edge_sweep-NAME.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402
import recall  # noqa: E402  (its pixel rule: the centre 60 % keeps < SHARP_KEEP of its detail; the tests' too)
LOOKS = [("half", "frontal"), ("frontal", "half"), ("half", "squeezed"), ("squeezed", "frontal")]
PROFILES = [("profile", "profile-left"), ("profile-left", "frontal")]


def clip_specs(kind: str):
    if kind == "std":
        yield from itertools.product((5, 10, 15, 30), ("horizontal", "vertical"), (0.5, 1.0), LOOKS)
        for axis, looks in itertools.product(("horizontal", "vertical"), LOOKS):
            yield 30, axis, 0.25, looks
    elif kind == "prof":
        yield from itertools.product((5, 10, 15, 30), ("horizontal", "vertical"), (0.5, 1.0), PROFILES)
    else:
        raise ValueError(kind)


def apply_rules(spec: str) -> None:
    """Switch the engine's box rules on or off in this process (the forked workers inherit them)."""
    from redactor.detectors import centerface, yunet
    from redactor.tracking import coverage
    rules = {} if spec == "none" else dict(r.split("=") if "=" in r else (r, "") for r in spec.split(","))
    if spec == "all":
        return
    for cls in (centerface.CenterFace, yunet.YuNet):
        cls.FRONTAL_ASPECT = float(rules["widen"] or cls.FRONTAL_ASPECT) if "widen" in rules else 0.0
    if "sym" in rules:
        from redactor import boxes
        both = (lambda b, lx, aspect, lopsided=0.2: boxes.widen_turned(b, None, aspect))
        centerface.widen_turned = yunet.widen_turned = both
    if "part" not in rules:
        coverage.EDGE_PART_RATIO = coverage.EDGE_RATIO
    if "bridge" not in rules:
        coverage._bridged = lambda *a: []


def gray_frames(path: str) -> list[np.ndarray]:
    import av
    with av.open(path) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default="all", help="all, none, or e.g. widen=0.9,part,bridge")
    ap.add_argument("--clips", default="std", choices=("std", "prof", "shared"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="engine setting (repeatable)")
    ap.add_argument("--only", default="", help="only clips whose name contains this")
    ap.add_argument("--name", default="")
    a = ap.parse_args(argv)
    common.ensure_model()
    from redactor import Config, blur, redact_file
    apply_rules(a.rules)
    area_file = common.OUT / f"edge_sweep-area-{os.getpid()}.txt"
    original = blur.redact_frame

    def redact_frame(frame, boxes, style, mask, enlarge):  # runs in the workers: each appends its frames' area
        out, eb = original(frame, boxes, style, mask, enlarge)
        m = np.zeros((frame.height, frame.width), bool)
        for b in eb:
            m[b[1]:b[3], b[0]:b[2]] = True
        with open(area_file, "a") as f:
            f.write(f"{int(m.sum())}\n")
        return out, eb

    blur.redact_frame = redact_frame
    cfg = Config(workers=1, **dict(kv.split("=", 1) for kv in a.set))
    work = common.OUT / "edge_sweep"
    media = common.MEDIA / "edges"
    work.mkdir(parents=True, exist_ok=True)
    media.mkdir(parents=True, exist_ok=True)
    if a.clips == "shared":
        d = common.SHARED_MEDIA
        found = sorted(d.iterdir()) if d.is_dir() else []
        clips = [(p.name, str(p), None) for p in found if p.suffix in (".mp4", ".mkv")]
    else:
        from testmedia import edge_clip
        clips = []
        for fps, axis, speed, looks in clip_specs(a.clips):
            name = f"{fps}fps-{axis[0]}-{speed:g}-{'-'.join(looks)}"
            p = media / f"{name}.mp4"
            truth = p.with_suffix(".truth.json")
            if not truth.is_file():
                gt = edge_clip(str(p), axis=axis, fps=fps, speed=speed, looks=looks)
                truth.write_text(json.dumps(gt))
            clips.append((name, str(p), json.loads(truth.read_text())))
    clips = [c for c in clips if a.only in c[0]]
    t0 = time.perf_counter()
    results = []
    for name, path, gt in clips:
        area_file.unlink(missing_ok=True)
        out = str(work / f"{name}.redacted.mp4")
        redact_file(path, out, cfg)
        area = sum(int(x) for x in area_file.read_text().split()) if area_file.is_file() else 0
        src, dst = gray_frames(path), gray_frames(out)
        h, w = src[0].shape
        res = {"clip": name, "fps": float(Fraction(gt["fps"])) if gt else None, "area": area,
               "pixels": len(src) * w * h}
        if gt:
            misses, visible = [], 0
            for i, boxes in enumerate(gt["faces"]):
                for box in boxes:
                    if box[2] - box[0] < recall.MIN_VISIBLE or box[3] - box[1] < recall.MIN_VISIBLE:
                        continue
                    visible += 1
                    kept = recall.sharp_ratio(src[i], dst[i], box)
                    if kept >= recall.SHARP_KEEP:
                        misses.append([i, box, round(kept, 2)])
            res.update(visible=visible, misses=misses)
        results.append(res)
        print(f"{name:40s} " + (f"GT {res['visible'] - len(res['misses'])}/{res['visible']} " if gt else "") +
              f"blurred {100 * area / res['pixels']:.2f}%" +
              (f"  misses {res['misses']}" if gt and res["misses"] else ""), flush=True)
    area_file.unlink(missing_ok=True)
    blurred = 100 * sum(r["area"] for r in results) / max(1, sum(r["pixels"] for r in results))
    rows = []
    for fps in sorted({r["fps"] for r in results if r["fps"]}):
        rs = [r for r in results if r["fps"] == fps]
        worst = min(1 - len(r["misses"]) / r["visible"] for r in rs)
        rows.append(f"{fps:g} fps: worst GT {worst:.3f}, misses {sum(len(r['misses']) for r in rs)}/"
                    f"{sum(r['visible'] for r in rs)}")
    leaky = sum(1 for r in results if r.get("misses"))
    out = common.write_result(f"edge_sweep-{a.name or a.clips}", {
        "rules": a.rules, "clips": a.clips, "settings": a.set, "results": results, "blurred_area_pct": blurred,
        "elapsed_seconds": time.perf_counter() - t0})
    print(f"SUMMARY edge_sweep rules={a.rules} clips={a.clips} {' '.join(a.set)}: {'; '.join(rows)}; clips with a "
          f"miss {leaky}/{len(results)}; blurred {blurred:.3f}% of all frames' area ({time.perf_counter() - t0:.0f}s) "
          f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
