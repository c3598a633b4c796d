"""The JSON report written beside every redacted video."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
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


# shares of the picture (percent) above which a frame counts as largely redacted: counted in the report and
# flagged in the HTML report (a false face spread by the coverage rules can wipe most of a frame)
LARGE_REDACTION_PCT = (20, 50)


def load_redacted_share(results: list[SegmentResult]) -> dict[int, float]:
    """Per redacted frame, the share (0..1) of the picture its redacted regions cover, from the sidecar files."""
    return {int(f): float(v) for data in _sidecars(results) for f, v in data.get("redacted_share", [])}


def redacted_area(shares: dict[int, float], n_frames: int) -> dict:
    """The report's ``redacted_area``: how much of the picture the redacted regions (their boxes, after every
    coverage rule) cover per frame. ``mean_pct`` over every frame (unredacted ones count 0), ``max_pct`` and its
    frame, and for each threshold T of LARGE_REDACTION_PCT the frames covered more than T %: their count
    (``frames_over_T_pct``) and half-open ranges (``ranges_over_T_pct``); ``large_frames``: [frame, percent] of
    every frame above the lowest threshold."""
    top = max(shares.items(), key=lambda kv: (kv[1], -kv[0]), default=(None, 0.0))
    out = {"thresholds_pct": list(LARGE_REDACTION_PCT),
           "mean_pct": round(100 * sum(shares.values()) / n_frames, 2) if n_frames else 0.0,
           "max_pct": round(100 * top[1], 2), "max_frame": top[0]}
    for t in LARGE_REDACTION_PCT:
        over = sorted(f for f, v in shares.items() if 100 * v > t)
        out[f"frames_over_{t}_pct"] = len(over)
        out[f"ranges_over_{t}_pct"] = frame_ranges(over)
    out["large_frames"] = [[f, round(100 * v, 1)] for f, v in sorted(shares.items())
                           if 100 * v > LARGE_REDACTION_PCT[0]]
    return out


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
    area = redacted_area(load_redacted_share(results), sum(r.frames for r in results))
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
            # frames whose redacted regions cover more than 20 % / 50 % of the picture (see redacted_area)
            **{f"frames_over_{t}_pct_redacted": area[f"frames_over_{t}_pct"] for t in LARGE_REDACTION_PCT},
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
        "redacted_area": area,
    }


@dataclass(frozen=True)
class StoredRun:
    """Where a workflow run's video and work area live in S3 (s3:// URLs), as its report records them: the
    upload it read (with the object version and S3 event sequencer), the redacted video it wrote, and the run's
    work area. The CLI's report names local paths and has none of this."""
    source: str
    version: str | None
    sequencer: str | None
    output: str
    work_prefix: str

    def record(self, report: dict) -> None:
        report["source"]["path"] = self.source
        report["source"]["version"] = self.version
        report["source"]["sequencer"] = self.sequencer
        report["output"]["output"] = self.output
        report["work_prefix"] = self.work_prefix


def finish_report(plan: Plan, results: list[SegmentResult], stitch_result: StitchResult, timings: dict,
                  settings, stored: StoredRun | None = None) -> dict:
    """The run's report, finished the same way by the CLI (pipeline.redact_file) and the workflow's Stitch:
    build_report plus what the detector records once per video (detectors.run_report_fields), plus, for a
    workflow run, where it is stored in S3."""
    from .detectors import run_report_fields

    report = build_report(plan, results, stitch_result, timings)
    report["detector"].update(run_report_fields(settings))
    if stored is not None:
        stored.record(report)
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
