"""Partly visible and turned faces at the frame's edge: would a lower detection threshold near the edge or
on a tracked path find more of them, and at what false-redaction cost? Measured on the detector itself, frame by
frame, against ground truth (no schedule, no carry: what the model offers).

    .venv/bin/python bench/lowfps.py                       # CenterFace (the engine's settings otherwise)
    .venv/bin/python bench/lowfps.py --set detector=yunet  # YuNet
    .venv/bin/python bench/lowfps.py --engine              # also end to end: the engine at 0.35 vs 0.2 everywhere
    options: --low T (the lowered threshold, default 0.2) --edge F (near the edge: within F box sizes, 0.25)

Clips (cached in bench/out/media): the recall bench's edge clips (``recall.EDGE_CLIPS``: two faces crossing
the picture through every edge at 5-30 fps, frontal / squeezed / half faces, 56 px wide in 320x180) and the same
paths with 36 px faces. On every frame the detector runs the pass the engine would run on it for this size
(coarse when two-tier, else the full pass) at threshold 0.05; then each policy keeps:

* ``base``: score >= the engine's threshold (0.35);
* ``edge``: base, plus boxes scoring >= ``--low`` within ``--edge`` of their size from an edge of the frame;
* ``track``: base, plus boxes scoring >= ``--low`` within two face sizes of a base box on the frame before or
  after (a face the tracker is following);
* ``edge+track``: either; ``global``: every box scoring >= ``--low``.

A ground-truth face (visible part, at least 4 px each way) is found when a kept box has IoU > 0.3 with it or
its centre inside it; a kept box matching no ground-truth face is false. Found faces are split by the share of
the face that is visible (whole >= 0.9, part 0.5-0.9, sliver < 0.5). False cost: false boxes, and the frame
area they cover after ``enlarge`` (% of all frames' area). The engine covers a face the detector misses from
neighbouring samples (interpolation, edge carry), so a gain here is an upper bound on the gain in redaction;
``--engine`` runs the engine itself on every clip at the engine's threshold and at ``--low`` everywhere (the
upper bound of what any lowered threshold can add) and checks every visible ground-truth face by pixels
(recall.evaluate: GT recall; false boxes = the report's boxes matching no ground-truth face, and their
enlarged area); ``bench/recall.py --set threshold=0.2`` measures the false cost on the real clips.
Writes bench/out/lowfps.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402
import recall  # noqa: E402

MIN_VISIBLE = recall.MIN_VISIBLE
POLICIES = ("base", "edge", "track", "edge+track", "global")


def visible_share(box, full_w: float, full_h: float) -> float:
    return (box[2] - box[0]) * (box[3] - box[1]) / max(1.0, full_w * full_h)


def full_sizes(gt: dict) -> list[tuple[float, float]]:
    """Per face (0: the upper/left lane, 1: the lower/right one), its whole box size: the largest visible."""
    lane = 1 if gt["axis"] == "horizontal" else 0
    half = (gt["height"] if lane else gt["width"]) / 2
    best = [(0.0, 0.0), (0.0, 0.0)]
    for boxes in gt["faces"]:
        for b in boxes:
            n = int((b[lane] + b[lane + 2]) / 2 >= half)
            w, h = b[2] - b[0], b[3] - b[1]
            if w * h > best[n][0] * best[n][1]:
                best[n] = (w, h)
    return best


def face_index(gt: dict, box) -> int:
    lane = 1 if gt["axis"] == "horizontal" else 0
    half = (gt["height"] if lane else gt["width"]) / 2
    return int((box[lane] + box[lane + 2]) / 2 >= half)


def near_edge(b: np.ndarray, width: int, height: int, edge: float) -> np.ndarray:
    s = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    gap = np.minimum.reduce([b[:, 0], b[:, 1], width - b[:, 2], height - b[:, 3]])
    return gap <= edge * s


def keep(policy: str, dets: list[np.ndarray], i: int, thr: float, low: float, width: int, height: int,
         edge: float) -> np.ndarray:
    """The boxes of frame i a policy keeps (see the module docstring)."""
    from redactor.tracking import match
    b = dets[i]
    strong = b[:, 4] >= thr
    weak = (b[:, 4] >= low) & ~strong
    if policy == "global":
        return b[strong | weak]
    extra = np.zeros(len(b), bool)
    if policy in ("edge", "edge+track"):
        extra |= weak & near_edge(b, width, height, edge)
    if policy in ("track", "edge+track"):
        for j in (i - 1, i + 1):
            if 0 <= j < len(dets):
                o = dets[j][dets[j][:, 4] >= thr]
                if len(o):
                    for x, _ in match(b[:, :4], o[:, :4], max_dist=2.0):
                        extra[x] |= weak[x]
    return b[strong | extra]


def measure(gt: dict, dets: list[np.ndarray], thr: float, low: float, edge: float, enlarge: float) -> dict:
    from redactor.blur import expand_boxes
    W, H = gt["width"], gt["height"]
    full = full_sizes(gt)
    out = {}
    for policy in POLICIES:
        found = {"whole": [0, 0], "part": [0, 0], "sliver": [0, 0]}
        false = 0
        kept_n = 0
        false_px = 0
        for i, boxes in enumerate(gt["faces"]):
            k = keep(policy, dets, i, thr, low, W, H, edge)
            kept_n += len(k)
            g = np.asarray([b for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= MIN_VISIBLE], np.float32)
            hit = recall.same_place(g, k[:, :4]) if len(g) and len(k) else np.zeros((len(g), len(k)), bool)
            for n, b in enumerate(g):
                fw, fh = full[face_index(gt, b)]
                v = visible_share(b, fw, fh)
                bucket = "whole" if v >= 0.9 else "part" if v >= 0.5 else "sliver"
                found[bucket][1] += 1
                found[bucket][0] += int(hit[n].any()) if len(k) else 0
            bad = ~hit.any(axis=0) if len(g) else np.ones(len(k), bool)
            if bad.any():
                false += int(bad.sum())
                mask = np.zeros((H, W), bool)
                for x1, y1, x2, y2 in expand_boxes(k[bad], enlarge, W, H)[:, :4]:
                    mask[y1:y2, x1:x2] = True
                false_px += int(mask.sum())
        out[policy] = {"found": found, "kept": kept_n, "false": false,
                       "false_area_pct": 100 * false_px / (W * H * len(gt["faces"]))}
    return out


def detect_all(path: str, settings) -> list[np.ndarray]:
    """Every frame through the pass the engine would run on it (threshold 0.05)."""
    from redactor.detectors import make_detector
    from redactor.probe import probe
    info = probe(path)[0]
    det = make_detector(settings, info)
    two = det.two_tier(info.width, info.height)
    out = []
    for f in recall.frames_of(path):
        b = (det.coarse([f]) if two else det([f]))[0]
        out.append(np.asarray(b, np.float32).reshape(-1, 5))
    return out


def engine_false(report: dict, gt: dict, enlarge: float) -> tuple[int, int, float]:
    """(false boxes, boxes, % of all frames' area) of the boxes the engine's report lists, against ground truth."""
    from redactor.blur import expand_boxes
    W, H = gt["width"], gt["height"]
    false = boxes = px = 0
    for d in report["detections"]:
        b = np.asarray(d["boxes"], np.float32).reshape(-1, 5)
        b = b[[len(expand_boxes(x[None], enlarge, W, H)) > 0 for x in b]]  # rows inside the frame
        g = np.asarray(gt["faces"][d["frame"]], np.float32).reshape(-1, 4)
        bad = ~recall.same_place(g, b[:, :4]).any(axis=0) if len(g) and len(b) else np.ones(len(b), bool)
        boxes += len(b)
        false += int(bad.sum())
        if bad.any():
            mask = np.zeros((H, W), bool)
            for x1, y1, x2, y2 in expand_boxes(b[bad], enlarge, W, H)[:, :4]:
                mask[y1:y2, x1:x2] = True
            px += int(mask.sum())
    return false, boxes, 100 * px / (W * H * gt["frames"])


def end_to_end(clips, cfg, low: float, overrides: dict) -> list[dict]:
    """The engine at its threshold and at ``low`` on every clip: GT recall (pixels) and false boxes."""
    work = common.OUT / "lowfps"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, path, gt in clips:
        ref = recall.Reference(gt["width"], gt["height"])
        row = {"clip": label}
        for name, thr in (("base", cfg.threshold), ("low", low)):
            out, report, _ = recall.run_engine(path, work, f"{label}-{name}", {**overrides, "threshold": thr})
            # the reference on frame 0 only (every = the clip's length): the pixel check against ground truth
            # runs on every frame regardless
            res = recall.evaluate(path, out, ref, every=gt["frames"] + 1, gt=gt, cache=False)
            f, n, area = engine_false(report, gt, cfg.enlarge)
            row[name] = {"gt_redacted": res["gt_redacted"], "gt_faces": res["gt_faces"],
                         "gt_miss_frames": res["gt_miss_frames"], "false": f, "boxes": n, "false_area_pct": area}
        rows.append(row)
        common.log(f"[engine {label}] " + "; ".join(
            f"{k}: GT {row[k]['gt_redacted']}/{row[k]['gt_faces']} misses {row[k]['gt_miss_frames']} false "
            f"{row[k]['false']}/{row[k]['boxes']} ({row[k]['false_area_pct']:.3f}%)" for k in ("base", "low")))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--low", type=float, default=0.2)
    ap.add_argument("--edge", type=float, default=0.25)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--engine", action="store_true", help="also run the engine at both thresholds (slower)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    common.ensure_model()
    from redactor import Config
    cfg = Config.from_dict(dict(kv.split("=", 1) for kv in a.set))
    if not cfg.threshold:  # 0: the detector's own (detectors.own_defaults)
        from redactor.detectors import own_defaults
        cfg = Config.from_dict({**cfg.to_dict(), "threshold": own_defaults(cfg.detector)["threshold"]})
    low_cfg = Config.from_dict({**cfg.to_dict(), "threshold": 0.05})
    clips = [(f"{fps}fps-{axis[0]}-{speed:g}-{looks[0][0]}{looks[1][0]}-{face}px", fps, axis, speed, looks, face)
             for face in (56, 36) for fps, axis, speed, looks in recall.EDGE_CLIPS]
    totals = {p: {"found": {"whole": [0, 0], "part": [0, 0], "sliver": [0, 0]}, "kept": 0, "false": 0,
                  "false_area_pct": 0.0} for p in POLICIES}
    rows, media = [], []
    for label, fps, axis, speed, looks, face in clips:
        path, gt = recall.edge_clip(fps, axis, speed, looks, face=face)
        media.append((label, path, gt))
        dets = detect_all(path, low_cfg)
        m = measure(gt, dets, cfg.threshold, a.low, a.edge, cfg.enlarge)
        rows.append({"clip": label, "frames": gt["frames"], **m})
        for p in POLICIES:
            for bucket, (f, n) in m[p]["found"].items():
                totals[p]["found"][bucket][0] += f
                totals[p]["found"][bucket][1] += n
            totals[p]["kept"] += m[p]["kept"]
            totals[p]["false"] += m[p]["false"]
            totals[p]["false_area_pct"] += m[p]["false_area_pct"] / len(clips)
        common.log(f"[{label}] " + "; ".join(
            f"{p}: " + " ".join(f"{f}/{n}" for f, n in m[p]["found"].values()) + f" false {m[p]['false']}"
            for p in POLICIES))
    print(f"detector {cfg.detector}, threshold {cfg.threshold} vs {a.low} (near the edge: within {a.edge} box sizes; "
          f"on a track: within 2 face sizes of a box >= {cfg.threshold} on the frame before/after), {len(clips)} clips")
    print(f"{'policy':11s} {'whole faces':>13s} {'part (50-90%)':>15s} {'sliver (<50%)':>15s} {'all':>13s} "
          f"{'false boxes':>12s} {'false area':>10s}")
    for p in POLICIES:
        t = totals[p]
        f_all = sum(f for f, _ in t["found"].values())
        n_all = sum(n for _, n in t["found"].values())
        cells = [f"{f}/{n} {f / n:.3f}" if n else "-" for f, n in t["found"].values()]
        print(f"{p:11s} {cells[0]:>13s} {cells[1]:>15s} {cells[2]:>15s} {f'{f_all}/{n_all} {f_all / n_all:.3f}':>13s} "
              f"{t['false']:>5d}/{t['kept']:<6d} {t['false_area_pct']:9.3f}%")
    engine = end_to_end(media, cfg, a.low, dict(kv.split("=", 1) for kv in a.set)) if a.engine else []
    for k, thr in (("base", cfg.threshold), ("low", a.low)):
        if engine:
            r, n = sum(e[k]["gt_redacted"] for e in engine), sum(e[k]["gt_faces"] for e in engine)
            worst = min(e[k]["gt_redacted"] / e[k]["gt_faces"] for e in engine)
            print(f"engine, threshold {thr} everywhere: GT recall {r}/{n} = {r / n:.4f} (worst clip {worst:.4f}), "
                  f"clips with misses {[e['clip'] for e in engine if e[k]['gt_miss_frames']]}, false boxes "
                  f"{sum(e[k]['false'] for e in engine)}/{sum(e[k]['boxes'] for e in engine)}, false area (mean "
                  f"of clips) {sum(e[k]['false_area_pct'] for e in engine) / len(engine):.3f}%")
    out = common.write_result("lowfps", {"detector": cfg.detector, "threshold": cfg.threshold, "low": a.low,
                                         "edge": a.edge, "clips": rows, "totals": totals, "engine": engine,
                                         "elapsed_seconds": time.perf_counter() - t0})
    b, e = totals["base"], totals["edge+track"]
    gain = sum(f for f, _ in e["found"].values()) - sum(f for f, _ in b["found"].values())
    print(f"wrote {out}")
    print(f"SUMMARY lowfps: {cfg.detector}: edge+track at {a.low} finds {gain} more of "
          f"{sum(n for _, n in b['found'].values())} visible ground-truth faces than {cfg.threshold}, "
          f"false boxes {b['false']} -> {e['false']}, false area {b['false_area_pct']:.3f}% -> {e['false_area_pct']:.3f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
