"""The JSON report written beside every redacted video."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import __version__
from .probe import parse_tb
from .records import Plan, SegmentResult, StitchResult


def frame_ranges(frames: list[int]) -> list[list[int]]:
    """Sorted frame indices -> half-open ranges [[first, last + 1], ...] of consecutive frames."""
    out: list[list[int]] = []
    for f in frames:
        if out and f == out[-1][1]:
            out[-1][1] = f + 1
        else:
            out.append([f, f + 1])
    return out


def merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Half-open frame ranges (any order) -> sorted, with touching or overlapping ranges merged."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _sidecars(results: list[SegmentResult]):
    for r in sorted(results, key=lambda r: r.index):
        if r.detections and os.path.isfile(r.detections):
            yield json.loads(Path(r.detections).read_text())


def distinct_faces(boxes: list, overlap: float = 0.3) -> int:
    """How many faces ``boxes`` [[x1, y1, x2, y2, score], ...] show: a frame's record can hold the same face
    twice (a detector box and a small-face track box, or a coarse box that also starts a track), so boxes
    overlapping a higher-scoring one by IoU >= ``overlap`` count once."""
    kept: list = []
    for b in sorted(boxes, key=lambda b: -b[4]):
        if all(_iou(b, k) < overlap for k in kept):
            kept.append(b)
    return len(kept)


def _iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def load_detections(results: list[SegmentResult], time_base: str) -> list[dict]:
    """Per-frame detections from the segments' sidecar files, with timestamps in seconds and the number of
    distinct faces (``faces``). Of a record's ``boxes`` the last ``tracked`` come from small-face tracks,
    the others from the detector itself."""
    tb = parse_tb(time_base)
    frames = []
    for data in _sidecars(results):
        for d in data["frames"]:
            d = dict(d)
            d["time"] = round(float(d["pts"] * tb), 6)
            d["faces"] = distinct_faces(d["boxes"])
            frames.append(d)
    return frames


def load_redacted(results: list[SegmentResult]) -> list[list[int]]:
    """The frames with at least one redacted region, as merged half-open ranges, from the sidecar files."""
    return merge_ranges([rg for data in _sidecars(results) for rg in data.get("redacted", [])])


def build_report(plan: Plan, results: list[SegmentResult], stitch_result: StitchResult | None,
                 timings: dict, detections: list[dict] | None = None) -> dict:
    src = plan.source
    results = sorted(results, key=lambda r: r.index)
    if detections is None:
        detections = load_detections(results, src.time_base)
    stage: dict[str, float] = {}
    dstats: dict = {}
    for r in results:
        for k, v in r.stage_seconds.items():
            stage[k] = round(stage.get(k, 0.0) + v, 4)
        for k, v in r.detector_stats.items():
            if isinstance(v, (int, float)):
                dstats[k] = dstats.get(k, 0) + v
    total = timings.get("total", 0.0) or sum(timings.values())
    plan_d = plan.to_dict()
    by_index = {r.index: r for r in results}
    for s in plan_d["segments"]:
        s.pop("frame_pts", None)  # the plan's per-frame timestamps are the source's; no need to repeat them
        r = by_index.get(s["index"])
        if r is not None:
            # redaction wall time (in AWS: its Lambda's; locally the pool's, shared out by frames) and the
            # time its worker(s) spent on it (decode/detect/track/redact/encode, summed over chunks)
            s["redact_seconds"] = r.wall_seconds
            s["worker_seconds"] = round(sum(r.stage_seconds.values()), 4)
    return {
        "redactor_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": src.to_dict(),
        "output": stitch_result.to_dict() if stitch_result else None,
        "settings": plan.settings,
        "plan": {"segments": plan_d["segments"], "keyframes": plan.keyframes,
                 "target_segment_frames": plan.target_segment_frames},
        "counts": {
            "frames": sum(r.frames for r in results),
            "detected_frames": sum(r.detected_frames for r in results),
            "faces": sum(r.faces for r in results),
            # detected frames on which faces were found (of detected_frames); frames_with_boxes also counts
            # frames that only small-face tracks followed back onto (not detected frames themselves)
            "frames_with_faces": sum(r.detected_with_faces for r in results),
            "frames_with_boxes": len(detections),
            "redacted_frames": sum(r.redacted_frames for r in results),
            "segments": len(results),
        },
        "removed_metadata": stitch_result.removed_metadata if stitch_result else [],
        "detector": {"name": plan.settings.get("detector"), **dstats},
        "timings": {**{k: round(v, 4) for k, v in timings.items()}, "worker_stage_seconds": stage},
        "frames_per_second": round(src.frame_count / total, 2) if total else None,
        "detections": detections,
        # frames with at least one redacted region (covered by a detection, a track, or a box held or
        # interpolated between samples), as half-open ranges [first, last + 1] of frame indices
        "redacted_ranges": load_redacted(results),
    }


def finish_report(plan: Plan, results: list[SegmentResult], stitch_result: StitchResult, timings: dict,
                  settings) -> dict:
    """The run's report, finished the same way by the CLI (pipeline.redact_file) and the workflow's Stitch:
    build_report plus what the detector records once per video (detectors.run_report_fields)."""
    from .detectors import run_report_fields

    report = build_report(plan, results, stitch_result, timings)
    report["detector"].update(run_report_fields(settings))
    return report


def write_json_atomic(path: str, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def write_text_atomic(path: str, text: str) -> None:
    """Write to a temporary name beside ``path`` and rename it into place (never a half-written file)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(partial_path(path))
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def partial_path(path: str) -> str:
    """The temporary name ``write_text_atomic`` writes ``path`` under before renaming it into place."""
    p = Path(path)
    return str(p.with_name(f".{p.name}.partial-{os.getpid()}"))
