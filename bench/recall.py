"""Leak check: run the engine (default Config) on each clip, then look for faces that survive redaction
with a stronger *reference* detector.

    .venv/bin/python bench/recall.py                 # /work/shared/media + generated clips (see below)
    .venv/bin/python bench/recall.py --quick         # two-walkers + 1 s small-face clip + 0.5 s 4K clip
    .venv/bin/python bench/recall.py --dir DIR       # clips in DIR (plus the generated ones unless --no-generated)
    .venv/bin/python bench/recall.py --only fps      # only clips whose label contains "fps" (repeatable)
    options: --every K (reference frame step; default 1, or 2 for clips over 150 frames)
             --ref-width W (reference inference width budget, default 2048) --ref-threshold T (default 0.2)

Generated clips (cached in bench/out/media, with ground truth): 480x270 3 s with 3 faces 16-24 px wide;
3840x2160 1 s with 3 faces 30-60 px wide; 1920x1080 2 s with 5 faces 24-120 px wide (not in --quick).

Low frame rates (not in --quick, --no-lowfps skips them): 10 fps copies of the shared two-walkers (12 fps)
and signer-closeup (30 fps) clips -- every 3rd frame at 10 fps, what a 10 fps camera records
(``testmedia.decimate``, cached in bench/out/media; skipped when /work/shared/media is absent) -- and
generated 320x180 clips of two faces crossing the picture through every edge (``testmedia.edge_clip``) at 5,
10, 15 and 30 fps, half and one face width per frame, frontal / squeezed / half faces, with ground truth
(faces cut by the frame's edge: the visible part; slivers under 4 px are not checked). Results are also
printed grouped per frame rate (worst recall, worst GT recall, leaks, false area).

Reference: CenterFace (same ONNX model) with threshold 0.2 and an upscaled input: min_face is picked per
clip so the whole frame is inferred at about ``--ref-width`` pixels wide (2048 by default; small frames are
upscaled up to 16/6 = 2.7x, 4K is inferred at full resolution in one 3840-wide pass instead of the
engine's four 1920 tiles); it runs on every ``--every``-th frame of the *source* -> reference faces, and on
the same frames of the *redacted output*, only where the source had reference faces (elsewhere no leak is
possible).

* leak: a source reference face with an output reference detection at that place (IoU > 0.3 or the
  output box's centre inside the source box) *and* the face's central 60% in the output still keeping
  >= 25% of the source's high-frequency (Laplacian) energy, i.e. not blurred. Without the pixel test the
  low-threshold reference also "finds" the face-shaped blurred ellipses (scores 0.2-0.6), which are not
  identifiable faces; that raw count is still reported as ``detector_only_leaks`` / ``recall_detector_only``
  (blurred faces keep 0.001-0.04 of the energy, missed ones 0.5-0.9, so the split is unambiguous).
  recall = 1 - leaks / confirmed reference faces (target >= 0.99 per clip). A reference face is
  *confirmed* when it scores >= 0.5 or the reference also finds a face within two face sizes of it on the
  reference frame before or after: faces persist, while an isolated low-score hit is usually texture (the
  one such hit in parking-lot, an 11x10 px patch of windshield reflection at score 0.27, was checked by
  eye). On the frames of a real clip checked by eye (``bench/precision_faces.json``, all 14 of the wearable
  clip's), a confirmed reference box that no checked face is near, clear of the frame's edge, is refuted: no
  face (the wearable clip's peony, which the reference scores 0.26-0.37 on three frames in a row), counted
  apart (``refuted_by_eye``). The same rules apply to deface in vs_deface.py; recall over *all* reference
  faces is printed beside it (recall_all). Output frames are matched to source
  frames by decode index; ``luma_psnr_db`` (whole frame, source vs output) flags a misalignment.
* ground truth (generated clips): a GT face is redacted when its central 60% keeps < 25% of the source's
  high-frequency energy in the output (pixel check, independent of any detector); gt_recall = redacted /
  GT faces. Also reported: the reference's own recall vs GT on the source (how much to trust it).
* false redaction: the engine's detections (report["detections"], sampled frames) expanded by
  Config.enlarge, on frames where the reference ran; a box is false when no reference face (and, for
  generated clips, no GT face) has IoU > 0.3 with it or its centre inside the expanded box. Reported as a
  fraction of boxes and as % of the frame area blurred (all boxes, and false ones only).

Writes bench/out/recall.json. Functions here are reused by bench/vs_deface.py.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402
from redactor.tracking import match  # noqa: E402

TARGET = 0.99
MIN_VISIBLE = 4  # px: a ground-truth face cut by the frame's edge to a narrower sliver has no centre to check
VIDEO_EXT = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi")
SHARP_KEEP = 0.25  # output keeps >= this share of the source's high-frequency energy -> not redacted
# (measured: blurred faces keep 0.001-0.04, untouched faces after re-encoding 0.5-0.9)


# ------------------------------------------------------------------------------------------------ reference
class Reference:
    """The strong reference detector for a given frame size."""

    def __init__(self, width: int, height: int, ref_width: int = 2048, threshold: float = 0.2):
        from redactor import Config
        from redactor.detectors import CenterFace
        mf = int(min(16, max(6, math.ceil(16 * width / ref_width))))
        self.config = Config(threshold=threshold, min_face=mf, max_infer_width=3840)
        self.cf = CenterFace(self.config)
        iw, ih, tiles = self.cf.plan_inference(width, height)
        self.desc = {"threshold": threshold, "min_face": mf, "infer": [iw, ih], "tiles": len(tiles),
                     "scale": round(iw / (tiles[0][2] or 1), 3), "ref_width": ref_width}

    def __call__(self, frame) -> np.ndarray:
        return self.cf([frame])[0]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    a, b = np.asarray(a, np.float32)[:, :4], np.asarray(b, np.float32)[:, :4]
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (aa[:, None] + ab[None, :] - inter + 1e-9)


def centre_inside(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """[i, j]: centre of inner[i] lies inside outer[j]."""
    if len(inner) == 0 or len(outer) == 0:
        return np.zeros((len(inner), len(outer)), bool)
    inner, outer = np.asarray(inner, np.float32), np.asarray(outer, np.float32)
    cx = (inner[:, 0] + inner[:, 2]) / 2
    cy = (inner[:, 1] + inner[:, 3]) / 2
    return ((cx[:, None] >= outer[None, :, 0]) & (cx[:, None] <= outer[None, :, 2]) &
            (cy[:, None] >= outer[None, :, 1]) & (cy[:, None] <= outer[None, :, 3]))


def same_place(ref_boxes, other_boxes) -> np.ndarray:
    """[i, j]: other j is 'at the place of' reference face i (IoU > 0.3 or other's centre inside it)."""
    return (iou_matrix(ref_boxes, other_boxes) > 0.3) | centre_inside(other_boxes, ref_boxes).T


CONFIRM_SCORE = 0.5
EYE_NEAR = 1.6  # a reference box is near a face checked by eye when its centre is inside that face grown this much
# (or the face's centre inside the box: ``benchlib.face_near``, the precision bench's test of a face near)


def refuted_by_eye(checked: dict, i: int, box: np.ndarray, width: int, height: int) -> bool:
    """A reference box on a frame checked by eye (``benchlib.hand_checked``) that is no face: no face checked
    there is near it (neither centre inside the other, the face grown ``EYE_NEAR`` times), and it lies clear of
    the frame's edge by a tenth of its size (where the eye check leaves out faces cut by the edge)."""
    faces = checked.get(i)
    if faces is None:
        return False
    m = 0.1 * max(box[2] - box[0], box[3] - box[1])
    if box[0] <= m or box[1] <= m or box[2] >= width - m or box[3] >= height - m:
        return False
    return not common.face_near(np.asarray(box[:4])[None], faces, EYE_NEAR)[0]


def confirmed(src_ref: dict, i: int, box: np.ndarray, every: int) -> bool:
    """A reference face scoring >= CONFIRM_SCORE, or one with a reference face within two face sizes of
    it on the reference frame before or after."""
    if float(box[4]) >= CONFIRM_SCORE:
        return True
    for j in (i - every, i + every):
        other = src_ref.get(j)
        if other is not None and len(other) and match(box[None, :4], other[:, :4], max_dist=2.0):
            return True
    return False


def hf_energy(gray: np.ndarray, box, inner: float = 0.6) -> float:
    import cv2
    x1, y1, x2, y2 = [float(v) for v in box[:4]]
    w, h = x2 - x1, y2 - y1
    a = int(round(x1 + w * (1 - inner) / 2)), int(round(y1 + h * (1 - inner) / 2))
    b = int(round(x2 - w * (1 - inner) / 2)), int(round(y2 - h * (1 - inner) / 2))
    H, W = gray.shape
    xa, ya, xb, yb = max(0, a[0]), max(0, a[1]), min(W, max(b[0], a[0] + 3)), min(H, max(b[1], a[1] + 3))
    roi = gray[ya:yb, xa:xb].astype(np.float32)
    if roi.shape[0] < 3 or roi.shape[1] < 3:
        return 0.0
    lap = cv2.Laplacian(roi, cv2.CV_32F, ksize=1)
    return float(np.mean(lap[1:-1, 1:-1] ** 2))


def sharp_ratio(src_gray, out_gray, box) -> float:
    """Share of the source's high-frequency energy the output keeps in the box centre (1 ~ untouched)."""
    es = hf_energy(src_gray, box)
    eo = hf_energy(out_gray, box)
    return eo / es if es > 1e-6 else 1.0


# ------------------------------------------------------------------------------------------------ video I/O
def frames_of(path: str):
    import av
    c = av.open(path)
    try:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        for f in c.decode(vs):
            yield f
    finally:
        c.close()


def video_size(path: str) -> tuple[int, int, int]:
    """(width, height, frame count by packets)."""
    import av
    with av.open(path) as c:
        vs = c.streams.video[0]
        w, h = vs.codec_context.width, vs.codec_context.height
        n = sum(1 for p in c.demux(vs) if p.size)
    return w, h, n


def video_fps(path: str) -> float:
    import av
    with av.open(path) as c:
        rate = c.streams.video[0].average_rate
    return float(rate) if rate else 0.0


def gray(frame) -> np.ndarray:
    return frame.to_ndarray(format="gray")


def _cache_key(path: str, ref: Reference, every: int) -> str:
    st = os.stat(path)
    raw = json.dumps([os.path.abspath(path), st.st_size, int(st.st_mtime), ref.desc, every], sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(source: str, output: str, ref: Reference, every: int, gt: dict | None = None,
             report: dict | None = None, enlarge: float = 1.3, label: str = "", cache: bool = True) -> dict:
    """Leak check (+ GT recall, + false redaction if ``report``) of one redacted output against its source.
    ``cache``: keep the reference's source detections in bench/out/cache (keyed by path, size and mtime)."""
    t0 = time.perf_counter()
    cache = common.CACHE / f"ref-{_cache_key(source, ref, every)}.json" if cache else None
    src_ref: dict[int, np.ndarray] | None = None
    cached = cache is not None and cache.is_file()
    if cached:
        src_ref = {int(k): np.asarray(v, np.float32).reshape(-1, 5) for k, v in json.loads(cache.read_text()).items()}
    computed = {}
    gt_faces = gt["faces"] if gt else None
    leaks, ref_faces, gt_total, gt_redacted, gt_misses = [], 0, 0, 0, []
    ref_vs_gt = [0, 0]  # found, total
    n_src = n_out = 0
    ref_calls = 0
    psnr = []
    out_size = None
    out_frames = frames_of(output)
    checked = common.hand_checked(label) if label else {}
    size = (0, 0)
    for i, sf in enumerate(frames_of(source)):
        n_src += 1
        size = (sf.width, sf.height)
        of = next(out_frames, None)
        if of is not None:
            n_out += 1
        sampled = i % every == 0
        if not sampled and gt_faces is None:
            continue
        sg = og = None
        if of is not None and (of.width, of.height) != (sf.width, sf.height):
            # e.g. imageio-ffmpeg (deface) scales 1080 -> 1088 lines; compare at the source's size
            out_size = (of.width, of.height)
            of = of.reformat(width=sf.width, height=sf.height)
        if of is not None:
            sg, og = gray(sf), gray(of)
            if sampled:
                mse = float(np.mean((sg.astype(np.float32) - og.astype(np.float32)) ** 2))
                psnr.append(99.0 if mse < 1e-9 else 10 * math.log10(255 ** 2 / mse))
        if sampled:
            if src_ref is not None:
                rb = src_ref.get(i, np.zeros((0, 5), np.float32))
            else:
                rb = ref(sf)
                ref_calls += 1
                computed[i] = np.round(rb, 2).tolist()
            ref_faces += len(rb)
            if gt_faces is not None and i < len(gt_faces) and gt_faces[i]:
                g = np.asarray(gt_faces[i], np.float32)
                found = same_place(g, rb).any(axis=1) if len(rb) else np.zeros(len(g), bool)
                ref_vs_gt[0] += int(found.sum())
                ref_vs_gt[1] += len(g)
            if len(rb) and og is not None:
                ob = ref(of)
                ref_calls += 1
                hit = same_place(rb, ob)
                for r in np.nonzero(hit.any(axis=1))[0]:
                    j = int(np.argmax(np.where(hit[r], iou_matrix(rb[r:r + 1], ob)[0] + 1, -1)))
                    sr = sharp_ratio(sg, og, rb[r])
                    leaks.append({"frame": i, "box": np.round(rb[r, :4], 1).tolist(),
                                  "score": round(float(rb[r, 4]), 3), "out_box": np.round(ob[j, :4], 1).tolist(),
                                  "out_score": round(float(ob[j, 4]), 3), "sharp_ratio": round(sr, 3),
                                  "unblurred": sr >= SHARP_KEEP})
            elif len(rb):
                for r in range(len(rb)):  # no matching output frame: cannot be checked, counts as a leak
                    leaks.append({"frame": i, "box": np.round(rb[r, :4], 1).tolist(), "score": float(rb[r, 4]),
                                  "missing_output_frame": True, "unblurred": True})
        if gt_faces is not None and i < len(gt_faces) and og is not None:
            for box in gt_faces[i]:
                if min(box[2] - box[0], box[3] - box[1]) < MIN_VISIBLE:
                    continue
                gt_total += 1
                sr = sharp_ratio(sg, og, box)
                if sr < SHARP_KEEP:
                    gt_redacted += 1
                else:
                    gt_misses.append({"frame": i, "box": list(box), "sharp_ratio": round(sr, 3)})
    for _ in out_frames:
        n_out += 1
    if src_ref is None:
        if cache is not None:
            common.CACHE.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(computed))
        src_ref = {k: np.asarray(v, np.float32).reshape(-1, 5) for k, v in computed.items()}

    # A reference face is *confirmed* when it scores >= CONFIRM_SCORE or the reference also finds a face
    # near it on a neighbouring reference frame (faces persist; an isolated low-score hit is usually a
    # texture, e.g. a reflection in a windshield). Recall is computed over confirmed faces; the raw figure
    # over every reference face is reported beside it (recall_all).
    # On a real clip's frames checked by eye, a confirmed reference box no checked face is near is refuted: not a
    # face (the wearable clip's peony, which the reference scores 0.26-0.37 on three frames in a row); counted apart.
    for lk in leaks:
        lk["confirmed"] = confirmed(src_ref, lk["frame"], np.asarray(lk["box"] + [lk["score"]], np.float32), every)
        lk["refuted_by_eye"] = lk["confirmed"] and refuted_by_eye(checked, lk["frame"], np.asarray(lk["box"]), *size)
    unconfirmed = sum(int(not confirmed(src_ref, i, b, every)) for i, bs in src_ref.items() for b in bs)
    refuted = sum(int(confirmed(src_ref, i, b, every) and refuted_by_eye(checked, i, b, *size))
                  for i, bs in src_ref.items() for b in bs)
    real = [lk for lk in leaks if lk["unblurred"]]
    real_c = [lk for lk in real if lk["confirmed"] and not lk["refuted_by_eye"]]
    faces_c = ref_faces - unconfirmed - refuted
    res = {"label": label, "source": source, "output": output, "every": every, "reference": ref.desc,
           "frames_source": n_src, "frames_output": n_out, "reference_faces": ref_faces,
           "confirmed_faces": faces_c, "refuted_by_eye": refuted, "leaks": len(real_c),
           "leak_frames": sorted({lk["frame"] for lk in real_c}),
           "recall": 1 - len(real_c) / faces_c if faces_c else None,
           "leaks_all": len(real), "leak_frames_all": sorted({lk["frame"] for lk in real}),
           "recall_all": 1 - len(real) / ref_faces if ref_faces else None,
           "detector_only_leaks": len(leaks),
           "recall_detector_only": 1 - len(leaks) / ref_faces if ref_faces else None,
           "luma_psnr_db": round(float(np.mean(psnr)), 2) if psnr else None,
           "output_size_differs": list(out_size) if out_size else None,
           "leak_details": leaks[:300], "ref_calls": ref_calls, "ref_cached": cached}
    if gt_faces is not None:
        res.update(gt_faces=gt_total, gt_redacted=gt_redacted, gt_recall=gt_redacted / gt_total if gt_total else None,
                   gt_miss_frames=sorted({m["frame"] for m in gt_misses}), gt_miss_details=gt_misses[:300],
                   reference_recall_vs_gt=ref_vs_gt[0] / ref_vs_gt[1] if ref_vs_gt[1] else None)
    if report is not None:
        res["false_redaction"] = false_redaction(report, src_ref, gt_faces, enlarge, every, n_src)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def false_redaction(report: dict, src_ref: dict, gt_faces, enlarge: float, every: int, n_frames: int) -> dict:
    from redactor.blur import expand_boxes
    W, H = report["source"]["width"], report["source"]["height"]
    if report["source"].get("rotation", 0) % 180:
        pass  # boxes are in stored-frame pixels, as are the reference's; nothing to swap
    dets = {d["frame"]: np.asarray(d["boxes"], np.float32).reshape(-1, 5) for d in report["detections"]}
    boxes = false = 0
    area_all = area_false = 0
    frames_eval = 0
    false_frames = []
    # only frames where the engine ran its detector (its coarse period at the clip's rate) and the reference ran
    from redactor import Config
    k = Config.from_dict(report.get("settings") or {}).schedule_for(report["source"].get("fps") or 0).every
    for i in range(0, n_frames):
        if i % every or i % k:
            continue
        frames_eval += 1
        d = dets.get(i)
        if d is None or len(d) == 0:
            continue
        eb = expand_boxes(d, enlarge, W, H)
        d = d[[len(expand_boxes(x[None], enlarge, W, H)) > 0 for x in d]]  # rows expand_boxes keeps (in frame)
        truth = [src_ref.get(i, np.zeros((0, 5), np.float32))[:, :4]]
        if gt_faces is not None and i < len(gt_faces) and gt_faces[i]:
            truth.append(np.asarray(gt_faces[i], np.float32))
        truth = np.concatenate(truth) if truth else np.zeros((0, 4), np.float32)
        ok = (iou_matrix(d[:, :4], truth) > 0.3).any(axis=1) | centre_inside(truth, eb).any(axis=0) \
            if len(truth) else np.zeros(len(eb), bool)
        mask_all = np.zeros((H, W), bool)
        mask_false = np.zeros((H, W), bool)
        for b, good in zip(eb, ok):
            mask_all[b[1]:b[3], b[0]:b[2]] = True
            if not good:
                mask_false[b[1]:b[3], b[0]:b[2]] = True
        boxes += len(eb)
        false += int((~ok).sum())
        if (~ok).any():
            false_frames.append(i)
        area_all += int(mask_all.sum())
        area_false += int(mask_false.sum())
    total_area = max(1, frames_eval * W * H)
    return {"boxes": boxes, "false_boxes": false, "false_fraction": false / boxes if boxes else 0.0,
            "blurred_area_pct": 100 * area_all / total_area, "false_area_pct": 100 * area_false / total_area,
            "frames_evaluated": frames_eval, "false_frames": false_frames[:200]}


def ranges(frames: list[int]) -> str:
    if not frames:
        return "-"
    out, start, prev = [], frames[0], frames[0]
    for f in frames[1:] + [None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    s = ",".join(out)
    return s if len(s) < 120 else s[:117] + "..."


def default_every(frames: int) -> int:
    return 1 if frames <= 150 else 2


def run_engine(source: str, work: Path, tag: str, config: dict | None = None) -> tuple[str, dict, dict]:
    out = work / f"{tag}.redacted.mp4"
    rep = work / f"{tag}.report.json"
    r = common.run_child({"mode": "redact", "source": source, "output": str(out), "config": config or {},
                          "report": str(rep)})
    return str(out), json.loads(rep.read_text()), r


def line(res: dict) -> str:
    s = (f"{res['label']:34s} frames {res['frames_source']:4d}/{res['frames_output']:<4d} every {res['every']} "
         f"ref faces {res['confirmed_faces']:4d} leaks {res['leaks']:3d} recall {fmt(res['recall'])} "
         f"(all {res['reference_faces']} incl. unconfirmed: {res['leaks_all']} leaks, {fmt(res['recall_all'])}; "
         f"detector-only {res['detector_only_leaks']}: {fmt(res['recall_detector_only'])})")
    if res.get("refuted_by_eye"):
        s += f" | {res['refuted_by_eye']} reference boxes refuted by eye"
    if "gt_recall" in res:
        s += f" | GT recall {fmt(res['gt_recall'])} ({res['gt_redacted']}/{res['gt_faces']}), ref-vs-GT {fmt(res['reference_recall_vs_gt'])}"
    fr = res.get("false_redaction")
    if fr:
        s += (f" | false boxes {fr['false_boxes']}/{fr['boxes']} ({100 * fr['false_fraction']:.1f}%), blurred "
              f"{fr['blurred_area_pct']:.2f}% of area, false {fr['false_area_pct']:.3f}%")
    if res.get("output_size_differs"):
        s += f" | output is {res['output_size_differs'][0]}x{res['output_size_differs'][1]} (rescaled to compare)"
    s += f"\n{'':36s}leak frames: {ranges(res['leak_frames'])}"
    if res["leak_frames_all"] != res["leak_frames"]:
        s += f" (incl. unconfirmed: {ranges(res['leak_frames_all'])})"
    if res.get("gt_miss_frames"):
        s += f"; GT miss frames: {ranges(res['gt_miss_frames'])}"
    return s


def fmt(x):
    return "n/a" if x is None else f"{x:.4f}"


LOW_FPS_COPIES = ("two-walkers", "signer-closeup")  # shared clips also measured as 10 fps copies
# (fps, axis, speed in face widths per frame, looks): every edge entered and left at every rate
EDGE_CLIPS = [(5, "horizontal", 1.0, ("half", "frontal")), (5, "vertical", 0.5, ("frontal", "squeezed")),
              (10, "horizontal", 1.0, ("squeezed", "half")), (10, "vertical", 0.5, ("half", "frontal")),
              (15, "horizontal", 0.5, ("frontal", "half")), (15, "vertical", 1.0, ("squeezed", "frontal")),
              (30, "horizontal", 1.0, ("half", "squeezed")), (30, "vertical", 0.5, ("frontal", "half")),
              # a real profile photo (testmedia's "profile" look, facing right; "profile-left" mirrored)
              (5, "horizontal", 1.0, ("profile", "profile-left")), (10, "vertical", 1.0, ("profile-left", "frontal")),
              (15, "horizontal", 0.5, ("profile-left", "profile")), (30, "vertical", 0.5, ("profile", "frontal"))]
LOOK_CODES = {"frontal": "f", "squeezed": "s", "half": "h", "profile": "p", "profile-left": "l"}


def low_fps_copy(source: Path, step: int = 3, fps: int = 10) -> str:
    """Every ``step``-th frame of a shared clip at ``fps`` (testmedia.decimate), cached in bench/out/media."""
    from testmedia import decimate
    common.MEDIA.mkdir(parents=True, exist_ok=True)
    st = source.stat()
    key = hashlib.sha1(json.dumps([str(source), st.st_size, int(st.st_mtime), step, fps]).encode()).hexdigest()[:8]
    path = common.MEDIA / f"{source.stem}-every{step}-{fps}fps-{key}.mp4"
    if not path.is_file():
        decimate(source, path, step=step, fps=fps)
    return str(path)


def edge_clip(fps, axis, speed, looks, face: int = 56) -> tuple[str, dict]:
    """A generated edge-crossing clip (testmedia.edge_clip, 320x180, a frontal face ``face`` px wide), cached in
    bench/out/media with its ground truth."""
    from testmedia import edge_clip as make
    spec = [fps, axis, speed, list(looks), face]
    name = f"edge-{fps}fps-{axis}-{speed:g}-{'-'.join(looks)}-{face}px"
    path = common.MEDIA / f"{name}-{hashlib.sha1(json.dumps(spec).encode()).hexdigest()[:8]}.mp4"
    truth = path.with_suffix(".truth.json")
    if not (path.is_file() and truth.is_file()):
        common.MEDIA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".partial.mp4")
        gt = make(str(tmp), axis=axis, fps=fps, speed=speed, looks=looks, face=face)
        tmp.replace(path)
        gt["path"] = str(path)
        truth.write_text(json.dumps(gt))
    return str(path), json.loads(truth.read_text())


def collect_clips(a) -> list[tuple[str, str, dict | None]]:
    clips = []
    d = Path(a.dir) if a.dir else common.SHARED_MEDIA
    if d.is_dir():
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in VIDEO_EXT:
                if a.quick and "two-walkers" not in p.name:
                    continue
                clips.append((p.stem, str(p), None))
                if not a.quick and not a.no_lowfps and any(n in p.name for n in LOW_FPS_COPIES):
                    clips.append((f"{p.stem}-every3rd-10fps", low_fps_copy(p), None))
    elif not a.dir:
        common.log(f"[recall] {d} is absent: no shared clips (nor their 10 fps copies)")
    if not a.no_generated:
        p, gt = common.clip("smallfaces", width=480, height=270, seconds=1.0 if a.quick else 3.0, faces=3,
                            face_size=(16, 24), seed=3)
        clips.append(("gen-480x270-faces16-24", p, gt))
        p, gt = common.clip("uhd", width=3840, height=2160, seconds=0.5 if a.quick else 1.0, faces=3,
                            face_size=(30, 60), seed=4)
        clips.append(("gen-3840x2160-faces30-60", p, gt))
        if not a.quick:  # the throughput clip's resolution, with distant (small) and near faces
            p, gt = common.clip("hd", width=1920, height=1080, seconds=2.0, faces=5, face_size=(24, 120), seed=6)
            clips.append(("gen-1920x1080-faces24-120", p, gt))
    if not a.quick and not a.no_lowfps:
        for fps, axis, speed, looks in EDGE_CLIPS:
            p, gt = edge_clip(fps, axis, speed, looks)
            clips.append((f"edge-{fps}fps-{axis[0]}-{speed:g}-{''.join(LOOK_CODES[lk] for lk in looks)}", p, gt))
    if a.only:
        clips = [c for c in clips if any(o in c[0] for o in a.only)]
    return clips


def per_fps(results: list[dict]) -> list[str]:
    """One line per frame rate: clips, worst recall, worst GT recall, leaks, GT misses, false area."""
    rows = []
    for fps in sorted({r["fps"] for r in results}):
        rs = [r for r in results if r["fps"] == fps]
        rec = [r["recall"] for r in rs if r["recall"] is not None]
        gts = [r for r in rs if r.get("gt_recall") is not None]
        fr = [r["false_redaction"] for r in rs if r.get("false_redaction")]
        fa = max((f["false_area_pct"] for f in fr), default=0.0)
        rows.append(f"{fps:6.2f} fps: {len(rs)} clips, worst recall {fmt(min(rec) if rec else None)} "
                    f"(leaks {sum(r['leaks'] for r in rs)}/{sum(r['confirmed_faces'] for r in rs)}), "
                    f"worst GT recall {fmt(min(r['gt_recall'] for r in gts) if gts else None)} "
                    f"({sum(r['gt_redacted'] for r in gts)}/{sum(r['gt_faces'] for r in gts)}), "
                    f"false boxes {sum(f['false_boxes'] for f in fr)}/{sum(f['boxes'] for f in fr)}, "
                    f"worst false area {fa:.3f}%  [{', '.join(r['label'] for r in rs)}]")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dir", help="folder of clips (default /work/shared/media if present)")
    ap.add_argument("--no-generated", action="store_true", help="skip the generated small-face / 4K clips")
    ap.add_argument("--name", default="recall", help="write bench/out/NAME.json (default recall)")
    ap.add_argument("--no-lowfps", action="store_true", help="skip the 10 fps copies and the edge clips")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="only clips whose label contains TEXT (repeatable)")
    ap.add_argument("--every", type=int, default=0, help="reference frame step (0 = auto: 1, or 2 over 150 frames)")
    ap.add_argument("--ref-width", type=int, default=2048)
    ap.add_argument("--ref-threshold", type=float, default=0.2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting to override, e.g. --set detect_every=3 (repeatable)")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    common.ensure_model()
    from redactor import Config
    cfg = Config.from_dict(dict(kv.split("=", 1) for kv in a.set))
    work = common.OUT / "recall"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for label, path, gt in collect_clips(a):
        w, h, n = video_size(path)
        every = a.every or default_every(n)
        if a.quick and w >= 3000:
            every = max(every, 3)
        t0 = time.perf_counter()
        out, report, run = run_engine(path, work, label, dict(kv.split("=", 1) for kv in a.set))
        t_engine = time.perf_counter() - t0
        ref = Reference(w, h, a.ref_width, a.ref_threshold)
        res = evaluate(path, out, ref, every, gt=gt, report=report, enlarge=cfg.enlarge, label=label)
        res["engine_seconds"] = round(run["wall"], 1)
        res["engine_fps"] = round(run["fps"], 2)
        res["size"] = [w, h]
        res["fps"] = round(video_fps(path), 2)
        results.append(res)
        print(line(res), flush=True)
        common.log(f"[{label}] engine {t_engine:.0f}s, reference {res['seconds']:.0f}s ({res['ref_calls']} calls, "
                   f"ref {ref.desc})")
    elapsed = time.perf_counter() - t_start
    recalls = [r["recall"] for r in results if r["recall"] is not None]
    worst = min(recalls) if recalls else None
    below = [r["label"] for r in results if r["recall"] is not None and r["recall"] < TARGET]
    gts = [r["gt_recall"] for r in results if r.get("gt_recall") is not None]
    tot_leaks = sum(r["leaks"] for r in results)
    tot_det = sum(r["detector_only_leaks"] for r in results)
    tot_ref = sum(r["confirmed_faces"] for r in results)
    all_recalls = [r["recall_all"] for r in results if r["recall_all"] is not None]
    fb = sum(r["false_redaction"]["false_boxes"] for r in results)
    ab = sum(r["false_redaction"]["boxes"] for r in results)
    out = common.write_result(a.name, {"clips": results, "target": TARGET, "config": cfg.to_dict(),
                                         "machine": common.machine_info(), "elapsed_seconds": elapsed})
    print("per frame rate:")
    for row in per_fps(results):
        print("  " + row)
    print(f"wrote {out} ({elapsed:.0f}s)")
    print(f"SUMMARY recall: {len(results)} clips, worst recall {fmt(worst)} (target >= {TARGET} per clip"
          f"{'; below: ' + ', '.join(below) if below else ''}), leaks {tot_leaks}/{tot_ref} confirmed reference faces "
          f"(worst recall over all reference faces {fmt(min(all_recalls) if all_recalls else None)}) "
          f"(detector-only {tot_det}), GT recall min {fmt(min(gts) if gts else None)}, false boxes {fb}/{ab} "
          f"-> {'OK' if not below and recalls else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
