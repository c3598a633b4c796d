"""Precision beside recall: how much of the picture the output destroys where there is no face, per clip and
per detector, measured on the output's pixels of every frame.

    .venv/bin/python bench/precision.py                       # shared clips + generated scenes, yunet and centerface
    .venv/bin/python bench/precision.py --detector yunet      # one detector (repeatable)
    .venv/bin/python bench/precision.py --only wearable       # clips whose label contains TEXT (repeatable)
    .venv/bin/python bench/precision.py --code /work/wt/OTHER # run the engine of another checkout (its redactor/)
    .venv/bin/python bench/precision.py --calibrate           # the measure's floor: a plain re-encode, no blur
    options: --set KEY=VALUE (engine setting, repeatable) --quick (the generated scenes only, 1 s each)
             --name NAME (bench/out/NAME.json, default precision) --reuse (measure the outputs an earlier
             run of that NAME left, without running the engine again)

For every clip and detector the engine redacts the clip in a fresh process (the ``redactor`` package of
``--code``, by default this checkout), with the blur call wrapped to record the regions it really blurred on
each frame (after carry, stretch, hold and tracking: ``redactor.blur.redact_frame``'s clipped boxes). Then:

* faces (the judge, neither candidate detector): the ground truth of generated clips; the boxes checked by eye
  in ``bench/precision_faces.json`` on sampled frames of the real clips (a frame between two checked frames
  takes both neighbours' boxes); and dlib's HOG face detector (``dlib-bin`` wheel, model built into the
  library) run on the source, upsampled so faces of about 20 px are in reach, on every frame of short clips
  and on at most JUDGE_FRAMES evenly spaced frames of longer ones.
* recall (judge): ground-truth faces (generated) or checked faces (real clips, on the checked frames only)
  whose centre 60 % (a generated scene's: the centre 80 % of its face core, see testmedia.scene; a warped
  face's box also holds hair and background) keeps < 25 % of the source's high-frequency energy in the output
  (the recall bench's pixel test), over all such faces.
* boxes with no face near: the recorded blurred regions, every frame, with no face (from any of the three
  sources above) near: no face centre inside the region, and the region's centre inside no face grown
  NEAR_GROW (1.6) times.
* over-redaction: each frame of source and output, halved through a Gaussian (so the finest detail, which
  re-encoding alone softens, does not count) and area-averaged down to at most MEASURE_WIDTH (640) px wide,
  is cut into BLOCK (8) px blocks; a block has detail when its source Laplacian energy is >= TEXTURE_FLOOR,
  and its detail is destroyed when the output keeps < KEEP of it. Blocks touching a face (grown FACE_GROW times about its centre, the blur's margin) are
  left out. Over-redaction of a frame = destroyed blocks / blocks with detail, outside faces (the share of
  the picture's detail outside faces that the output destroyed); the table gives its mean over every frame and
  the number of frames above 20 % and 50 %. ``--calibrate`` runs the same measure on a plain re-encode (the
  engine's encoder settings, no blur): what re-encoding alone scores.
* speed: frames / wall seconds of the engine call (decode, detect, blur, encode; the shared machine's load is
  printed beside it).

Clips: the shared clips (/work/shared/media) and the generated scenes in SCENES (testmedia.scene_clip:
textured backgrounds, close hands and objects, a fisheye warp, faces 12-280 px), cached in bench/out/media.
Prints one table row per clip and detector: recall (judge), boxes with no face near, over-redaction mean,
frames above 20 % and 50 %, frames/s. Figures and how they were taken: docs/precision.md.

Writes bench/out/precision.json (per-frame over-redaction included; with engine code whose JSON report has
``redacted_area``, that too, as ``report_redacted_area``: the share of each frame inside the redacted boxes).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

DETECTORS = ("yunet", "centerface")
BLOCK = 8  # px, at the measuring scale
MEASURE_WIDTH = 640  # frames are measured at most this wide and at most half size (the finest detail, which
# re-encoding alone softens, does not count: see --calibrate)
TEXTURE_FLOOR = 4.0  # mean squared Laplacian of a block with detail (re-encoding noise stays below it)
KEEP = 0.25  # a block keeping less than this share of its detail energy was blurred
FACE_GROW = 1.6
NEAR_GROW = 1.6
JUDGE_FRAMES = 60
JUDGE_WIDTH = 4000  # dlib upsamples (x2 each time) while the frame stays at most this wide
JUDGE_SCORE = 0.3  # dlib's score floor (its own is 0; on the astronaut its one false hit at upsample 1 scores 0.12)
THRESHOLDS = (20.0, 50.0)
VIDEO_EXT = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".avi")
CORE_TESTED = 0.8  # of a scene face's core (itself the face's central 60 %): eyes, nose and mouth, no hair
SCENE_FORMAT = 2  # the ground truth's shape (2: with face cores); part of the cache key
# generated scenes (testmedia.scene_clip arguments; label -> spec)
SCENES = {
    "gen-fisheye-hands-1280x960": dict(width=1280, height=960, fps=10, seconds=3.0,
                                       face_sizes=(16, 24, 40, 64, 110, 180), fisheye=0.6, hands=2, seed=11),
    "gen-texture-faces12-280-1920x1080": dict(width=1920, height=1080, fps=30, seconds=2.0,
                                              face_sizes=(12, 16, 24, 40, 64, 110, 200, 280), fisheye=0.0,
                                              hands=3, seed=12),
}


# ------------------------------------------------------------------------------------------------ clips
def scene(label: str, spec: dict, quick: bool) -> tuple[str, dict]:
    """A generated scene cached in bench/out/media with its ground truth."""
    spec = dict(spec, seconds=1.0) if quick else dict(spec)
    key = hashlib.sha1(json.dumps([spec, SCENE_FORMAT], sort_keys=True).encode()).hexdigest()[:10]
    path = common.MEDIA / f"{label}-{spec['seconds']:g}s-{key}.mp4"
    truth = path.with_suffix(".truth.json")
    if not (path.is_file() and truth.is_file()):
        from testmedia.scene import scene_clip
        common.MEDIA.mkdir(parents=True, exist_ok=True)
        common.log(f"[precision] generating {path.name} ...")
        tmp = path.with_name(path.stem + ".partial.mp4")
        gt = scene_clip(tmp, **spec)
        os.replace(tmp, path)
        gt["path"] = str(path)
        truth.write_text(json.dumps(gt))
    return str(path), json.loads(truth.read_text())


def collect_clips(a) -> list[tuple[str, str, dict | None]]:
    clips = []
    if not a.quick and common.SHARED_MEDIA.is_dir():
        for p in sorted(common.SHARED_MEDIA.iterdir()):
            if p.suffix.lower() in VIDEO_EXT:
                clips.append((p.stem, str(p), None))
    for label, spec in SCENES.items():
        clips.append((label, *scene(label, spec, a.quick)))
    if a.only:
        clips = [c for c in clips if any(o in c[0] for o in a.only)]
    return clips


# ------------------------------------------------------------------------------------------------ the judge
hand_checked = common.hand_checked  # the boxes checked by eye: {frame: (n, 4)} on a real clip's checked frames


def dlib_faces(path: str, n_frames: int, width: int) -> dict[int, np.ndarray]:
    """dlib HOG faces {frame: (n, 4)} on the judged frames, cached in bench/out/cache."""
    step = max(1, math.ceil(n_frames / JUDGE_FRAMES))
    up = 0
    while width * 2 ** (up + 1) <= JUDGE_WIDTH:
        up += 1
    st = os.stat(path)
    key = hashlib.sha1(json.dumps([os.path.abspath(path), st.st_size, int(st.st_mtime), step, up,
                               JUDGE_SCORE]).encode())
    cache = common.CACHE / f"dlib-{key.hexdigest()[:16]}.json"
    if cache.is_file():
        return {int(k): np.asarray(v, np.float32).reshape(-1, 4) for k, v in json.loads(cache.read_text()).items()}
    import dlib
    from recall import frames_of
    det = dlib.get_frontal_face_detector()
    out = {}
    t0 = time.perf_counter()
    for i, f in enumerate(frames_of(path)):
        if i % step:
            continue
        rects, _, _ = det.run(f.to_ndarray(format="rgb24"), up, JUDGE_SCORE)
        out[i] = np.asarray([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32).reshape(-1, 4)
    common.log(f"[precision] dlib judge: {len(out)} frames of {Path(path).name} (upsample {up}) in "
               f"{time.perf_counter() - t0:.0f}s")
    common.CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({k: v.tolist() for k, v in out.items()}))
    return out


def around(sampled: dict[int, np.ndarray], i: int) -> np.ndarray:
    """Boxes of frame ``i``: its own when sampled, else those of the sampled frames just before and after."""
    if i in sampled:
        return sampled[i]
    keys = sorted(sampled)
    before = [k for k in keys if k < i]
    after = [k for k in keys if k > i]
    parts = [sampled[before[-1]]] if before else []
    parts += [sampled[after[0]]] if after else []
    return np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)


def judge_faces(i: int, gt: dict | None, checked: dict, dlib_boxes: dict) -> np.ndarray:
    """Every face the judge knows of on frame ``i`` (ground truth, checked by eye, dlib), (n, 4)."""
    parts = [around(dlib_boxes, i)]
    if gt is not None and i < len(gt["faces"]):
        parts.append(np.asarray(gt["faces"][i], np.float32).reshape(-1, 4))
    if checked:
        parts.append(around(checked, i))
    return np.concatenate(parts)


# ------------------------------------------------------------------------------------------------ measures
grow, inside = common.grow, common.inside


def boxes_without_face(regions: np.ndarray, faces: np.ndarray) -> int:
    """How many blurred ``regions`` have no face near: no face centre inside the region, and the region's
    centre not inside any face grown NEAR_GROW times."""
    if len(regions) == 0:
        return 0
    if len(faces) == 0:
        return len(regions)
    return int((~common.face_near(regions, faces, NEAR_GROW)).sum())


def block_energy(gray: np.ndarray) -> np.ndarray:
    """Mean squared Laplacian per BLOCK x BLOCK block of ``gray`` (already at the measuring scale)."""
    import cv2
    lap = cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F, ksize=1)
    h, w = (gray.shape[0] // BLOCK) * BLOCK, (gray.shape[1] // BLOCK) * BLOCK
    e = (lap[:h, :w] ** 2).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    return e.mean(axis=(1, 3))


def measure_scale(width: int) -> float:
    return min(0.5, MEASURE_WIDTH / width)


def to_measure(gray: np.ndarray, scale: float) -> np.ndarray:
    """``gray`` at the measuring ``scale`` (<= 0.5): halved through a Gaussian (cv2.pyrDown), then area-averaged."""
    import cv2
    small = cv2.pyrDown(gray)
    if scale < 0.5:
        small = cv2.resize(small, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return small


def face_blocks(faces: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Blocks (at the measuring scale) touched by any face grown FACE_GROW times."""
    m = np.zeros(shape, bool)
    for x1, y1, x2, y2 in grow(faces, FACE_GROW) * scale / BLOCK:
        m[max(0, int(y1)):max(0, math.ceil(y2)), max(0, int(x1)):max(0, math.ceil(x2))] = True
    return m


def over_redaction(src: np.ndarray, out: np.ndarray, faces: np.ndarray, scale: float) -> tuple[float, float]:
    """(% of the detail outside faces destroyed, % of all blocks outside faces destroyed) for one frame pair
    of grey pictures at full size."""
    es, eo = block_energy(to_measure(src, scale)), block_energy(to_measure(out, scale))
    outside = ~face_blocks(faces, es.shape, scale)
    detail = outside & (es >= TEXTURE_FLOOR)
    destroyed = detail & (eo < KEEP * es)
    n_detail = int(detail.sum())
    return (100.0 * destroyed.sum() / n_detail if n_detail else 0.0,
            100.0 * destroyed.sum() / max(1, int(outside.sum())))


def face_redacted(src: np.ndarray, out: np.ndarray, box, inner: float = 0.6) -> bool | None:
    """The recall bench's pixel test: the face's centre (``inner`` of its box) keeps < SHARP_KEEP of its detail.
    None when the face is too small or too flat to tell."""
    from recall import SHARP_KEEP, hf_energy
    x1, y1, x2, y2 = box[:4]
    if min(x2 - x1, y2 - y1) < 4:
        return None
    es = hf_energy(src, box, inner)
    if es < 1.0:
        return None
    return hf_energy(out, box, inner) / es < SHARP_KEEP


def recall_truth(i: int, gt: dict | None, checked: dict) -> list[tuple[list, float]]:
    """(box, share of it tested) of the faces recall is measured on, on frame ``i``: a generated scene's face
    cores by their centre CORE_TESTED (under a fisheye warp a face's bounding box also holds hair and
    background), other ground truth and faces checked by eye (on checked frames only) by their centre 60 %."""
    if gt is not None and "cores" in gt:
        return [(b, CORE_TESTED) for b in gt["cores"][i]]
    if gt is not None:
        return [(b, 0.6) for b in gt["faces"][i]]
    return [(b, 0.6) for b in checked.get(i, [])]


# ------------------------------------------------------------------------------------------------ engine runs
def run_engine(source: str, output: str, config: dict, code: str, calibrate: bool = False) -> dict:
    """Redact ``source`` (or, with ``calibrate``, re-encode it without blurring) in a fresh process that imports
    ``redactor`` from ``code``; returns its result with ``regions``: {pts: [[x1, y1, x2, y2], ...]} blurred."""
    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        spec = {"source": source, "output": output, "config": config, "records": str(Path(tmp) / "regions"),
                "report": output + ".report.json", "calibrate": calibrate, "code": code}
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([code, str(common.ROOT)]))
        if Path(code) != common.ROOT:
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave another checkout as it is
        proc = subprocess.run([common.PY, str(Path(__file__).resolve()), "child", json.dumps(spec)], cwd=code,
                              env=env, capture_output=True, text=True, timeout=3600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"engine run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        res = json.loads(lines[-1][len("RESULT "):])
        regions: dict[int, list] = {}
        for rec in glob.glob(spec["records"] + ".*"):
            for ln in Path(rec).read_text().splitlines():
                pts, boxes = json.loads(ln)
                regions[int(pts)] = boxes  # a frame redacted twice (a chunk started again) keeps its last regions
    res["regions"] = regions
    return res


def _install_recorder(records: str) -> None:
    """Wrap ``redactor.blur.redact_frame`` so every worker appends (pts, blurred regions) per frame to
    ``records``.<pid> (the workers are forked after this, so they inherit the wrapper)."""
    import redactor.blur as blur
    original = blur.redact_frame

    def recording(frame, boxes, *args, **kw):
        result = original(frame, boxes, *args, **kw)
        eb = np.asarray(result[1], np.float32)
        eb = eb.reshape(len(eb), -1) if len(eb) else np.zeros((0, 4), np.float32)
        with open(f"{records}.{os.getpid()}", "a") as fh:
            fh.write(json.dumps([int(frame.pts), np.round(eb[:, :4], 1).tolist()]) + "\n")
        return result

    blur.redact_frame = recording


def _use_code(code: str) -> None:
    """Import ``redactor`` from ``code``: first on the path, and without the editable install's finder (which
    would otherwise resolve it to the checkout the virtual environment was installed from)."""
    sys.path.insert(0, code)
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]


def _child(spec: dict) -> dict:
    _use_code(spec["code"])
    import redactor
    from redactor import Config, redact_file
    cfg = Config.from_dict(spec["config"])
    t0 = time.perf_counter()
    b0, c0 = common.cpu_busy_seconds(), os.times()
    if spec["calibrate"]:
        frames = common.transcode(spec["source"], spec["output"], crf=cfg.encoding.crf,
                                  preset=cfg.encoding.preset)["frames"]
    else:
        _install_recorder(spec["records"])
        frames = redact_file(spec["source"], spec["output"], cfg, report_path=spec["report"])["counts"]["frames"]
    wall = time.perf_counter() - t0
    c1, b1 = os.times(), common.cpu_busy_seconds()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) + (
        c1.children_system - c0.children_system)
    return {"frames": frames, "wall": wall, "fps": frames / wall if wall > 0 else None,
            "foreign_load_cores": round(max(0.0, (b1 - b0) - cpu) / wall, 2) if wall > 0 else None,
            "redactor": str(Path(redactor.__file__).resolve().parent), "settings": cfg.to_dict()}


# ------------------------------------------------------------------------------------------------ evaluation
def source_pts(path: str) -> list[int]:
    from recall import frames_of
    return [f.pts for f in frames_of(path)]


def evaluate(label: str, source: str, output: str, regions: dict, gt: dict | None, checked: dict,
             dlib_boxes: dict) -> dict:
    """Every frame of source and output side by side: over-redaction, boxes with no face near, recall."""
    from recall import frames_of, gray
    pts = source_pts(source)
    by_pts = {p: np.asarray(regions.get(p, []), np.float32).reshape(-1, 4) for p in pts}
    per_frame, per_frame_area = [], []
    boxes = lonely = faces_total = faces_redacted = 0
    lonely_frames = []
    by_width: dict[int, list[int]] = {}  # generated scenes: face width -> [missed, redacted]
    outs = frames_of(output)
    scale = None
    for i, sf in enumerate(frames_of(source)):
        of = next(outs, None)
        if of is None:
            raise RuntimeError(f"{label}: the output has fewer frames than the source ({i})")
        sg, og = gray(sf), gray(of)
        scale = scale or measure_scale(sg.shape[1])
        faces = judge_faces(i, gt, checked, dlib_boxes)
        detail_pct, area_pct = over_redaction(sg, og, faces, scale)
        per_frame.append(round(detail_pct, 2))
        per_frame_area.append(round(area_pct, 2))
        reg = by_pts.get(pts[i], np.zeros((0, 4), np.float32))
        n_lonely = boxes_without_face(reg, faces)
        boxes += len(reg)
        lonely += n_lonely
        if n_lonely:
            lonely_frames.append(i)
        for k, (box, inner) in enumerate(recall_truth(i, gt, checked)):
            ok = face_redacted(sg, og, box, inner)
            if ok is not None:
                faces_total += 1
                faces_redacted += int(ok)
                if gt is not None and "face_sizes" in gt:  # a scene's faces keep their order on every frame
                    by_width.setdefault(gt["face_sizes"][k], [0, 0])[int(ok)] += 1
    pf = np.asarray(per_frame)
    return {"frames": len(per_frame), "recall": faces_redacted / faces_total if faces_total else None,
            "recall_faces": faces_total, "recall_redacted": faces_redacted,
            "recall_by_face_width": {w: f"{r}/{m + r}" for w, (m, r) in sorted(by_width.items())} or None,
            "boxes": boxes, "boxes_without_face": lonely, "boxes_without_face_frames": lonely_frames[:300],
            "over_redaction_mean_pct": float(pf.mean()) if len(pf) else 0.0,
            "over_redaction_max_pct": float(pf.max()) if len(pf) else 0.0,
            **{f"frames_over_{int(t)}": int((pf > t).sum()) for t in THRESHOLDS},
            "over_redaction_area_mean_pct": float(np.mean(per_frame_area)) if per_frame_area else 0.0,
            "over_redaction_per_frame_pct": per_frame}


def judge_recall(gt: dict | None, checked: dict, dlib_boxes: dict) -> float | None:
    """How many of the faces the judge is sure of (ground truth or checked by eye) dlib finds on its frames:
    how much to trust dlib where nobody checked."""
    from recall import same_place
    found = total = 0
    for i, db in dlib_boxes.items():
        truth = np.asarray(gt["faces"][i], np.float32).reshape(-1, 4) if gt is not None else checked.get(i)
        if truth is None or not len(truth):
            continue
        total += len(truth)
        found += int(same_place(truth, db).any(axis=1).sum()) if len(db) else 0
    return found / total if total else None


# ------------------------------------------------------------------------------------------------ table
COLUMNS = ("clip", "detector", "recall (judge)", "boxes w/o face", "over-redaction mean", "frames >20 %",
           "frames >50 %", "frames/s")


def row(r: dict) -> list[str]:
    rec = "n/a" if r["recall"] is None else f"{r['recall']:.3f} ({r['recall_redacted']}/{r['recall_faces']})"
    share = 100 * r["boxes_without_face"] / r["boxes"] if r["boxes"] else 0.0
    return [r["label"], r["detector"], rec, f"{r['boxes_without_face']}/{r['boxes']} ({share:.1f} %)",
            f"{r['over_redaction_mean_pct']:.2f} %", f"{r['frames_over_20']}/{r['frames']}",
            f"{r['frames_over_50']}/{r['frames']}", f"{r['engine_fps']:.2f}" if r.get("engine_fps") else "-"]


def table(results: list[dict]) -> str:
    rows = [list(COLUMNS)] + [row(r) for r in results]
    widths = [max(len(x[c]) for x in rows) for c in range(len(COLUMNS))]
    lines = ["| " + " | ".join(x[c].ljust(widths[c]) for c in range(len(COLUMNS))) + " |" for x in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def measure_clip(label: str, path: str, gt: dict | None, detectors, a, work: Path) -> list[dict]:
    from recall import video_size
    w, h, n = video_size(path)
    checked = hand_checked(label)
    dlib_boxes = dlib_faces(path, n, w)
    trust = judge_recall(gt, checked, dlib_boxes)
    settings = dict(kv.split("=", 1) for kv in a.set)
    out = []
    for det in (["calibrate"] if a.calibrate else detectors):
        output = str(work / f"{label}.{det}.mp4")
        saved = Path(output + ".run.json")
        if a.reuse and saved.is_file() and Path(output).is_file():
            run = json.loads(saved.read_text())
            run["regions"] = {int(k): v for k, v in run["regions"].items()}
        else:
            run = run_engine(path, output, {**settings, "detector": det} if det != "calibrate" else settings,
                             a.code, calibrate=det == "calibrate")
            saved.write_text(json.dumps(run))
        t0 = time.perf_counter()
        res = evaluate(label, path, output, run["regions"], gt, checked, dlib_boxes)
        report = Path(output + ".report.json")
        area = json.loads(report.read_text()).get("redacted_area") if report.is_file() else None
        res["report_redacted_area"] = {k: v for k, v in (area or {}).items() if k != "large_frames"} or None
        res.update(label=label, detector=det, size=[w, h], engine_fps=run["fps"], engine_wall=run["wall"],
                   foreign_load_cores=run["foreign_load_cores"], redactor=run["redactor"],
                   judge={"dlib_frames": len(dlib_boxes), "checked_frames": sorted(checked),
                          "dlib_recall_vs_truth": trust, "ground_truth": gt is not None},
                   measure_seconds=round(time.perf_counter() - t0, 1))
        common.log(f"[precision] {label} {det}: engine {run['wall']:.1f}s ({run['redactor']}), measured in "
                   f"{res['measure_seconds']}s, other load {run['foreign_load_cores']} cores")
        print("| " + " | ".join(row(res)) + " |", flush=True)
        out.append(res)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", action="append", choices=DETECTORS, help="default: both")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine setting to override, e.g. --set threshold=0.5 (repeatable)")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="only clips whose label contains TEXT (repeatable)")
    ap.add_argument("--code", default=str(common.ROOT),
                    help="checkout whose redactor package runs the engine (default: this one)")
    ap.add_argument("--quick", action="store_true", help="the generated scenes only, 1 s each")
    ap.add_argument("--calibrate", action="store_true", help="measure a plain re-encode (no blur) instead")
    ap.add_argument("--name", default="precision", help="write bench/out/NAME.json")
    ap.add_argument("--reuse", action="store_true",
                    help="measure the outputs an earlier run with the same --name left (no engine run)")
    a = ap.parse_args(argv)
    a.code = str(Path(a.code).resolve())
    if not (Path(a.code) / "redactor" / "__init__.py").is_file():
        ap.error(f"--code {a.code}: no redactor package there")
    t_start = time.perf_counter()
    work = common.OUT / a.name
    work.mkdir(parents=True, exist_ok=True)
    results = []
    print("| " + " | ".join(COLUMNS) + " |", flush=True)
    for label, path, gt in collect_clips(a):
        results.extend(measure_clip(label, path, gt, a.detector or list(DETECTORS), a, work))
    print("\n" + table(results))
    out = common.write_result(a.name, {"clips": results, "code": a.code, "settings": a.set,
                                       "machine": common.machine_info(),
                                       "elapsed_seconds": round(time.perf_counter() - t_start, 1),
                                       "measure": {"block": BLOCK, "measure_width": MEASURE_WIDTH,
                                                   "texture_floor": TEXTURE_FLOOR, "keep": KEEP,
                                                   "face_grow": FACE_GROW, "near_grow": NEAR_GROW}})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "child":
        print("RESULT " + json.dumps(_child(json.loads(sys.argv[2]))), flush=True)
    else:
        sys.exit(main())
