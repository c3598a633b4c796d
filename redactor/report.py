"""The JSON report written beside every redacted video."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import __version__
from .probe import parse_tb
from .records import Plan, SegmentResult, StitchResult


def load_detections(results: list[SegmentResult], time_base: str) -> list[dict]:
    """Per-frame detections from the segments' sidecar files, with timestamps in seconds."""
    tb = parse_tb(time_base)
    frames = []
    for r in sorted(results, key=lambda r: r.index):
        if not r.detections or not os.path.isfile(r.detections):
            continue
        data = json.loads(Path(r.detections).read_text())
        for d in data["frames"]:
            d = dict(d)
            d["time"] = round(float(d["pts"] * tb), 6)
            frames.append(d)
    return frames


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
    for s in plan_d["segments"]:
        s.pop("frame_pts", None)  # the plan's per-frame timestamps are the source's; no need to repeat them
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
            "frames_with_faces": len(detections),
            "redacted_frames": sum(r.redacted_frames for r in results),
            "segments": len(results),
        },
        "removed_metadata": stitch_result.removed_metadata if stitch_result else [],
        "detector": {"name": plan.settings.get("detector"), **dstats},
        "timings": {**{k: round(v, 4) for k, v in timings.items()}, "worker_stage_seconds": stage},
        "frames_per_second": round(src.frame_count / total, 2) if total else None,
        "detections": detections,
    }


def write_json_atomic(path: str, data: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.partial-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, p)
