"""Stitch: check every planned part, remux parts + the original audio into the output bucket, write the report
beside it, then clean the run's work area.

Parts and the source are read in place (ranged GETs, one part open at a time): the parts are fetched ahead in
order with concurrent GETs (a bounded number of bytes ahead), the source's audio with a concurrent read-ahead;
/tmp holds only the output being written (plus the small detection sidecars the report reads), which is then
uploaded as a concurrent multipart upload that is aborted on any failure (never a partial object).

The parts are rediscovered from the plan in S3 (never from the Map's output), and each one must have its
results/NNNNN.json commit marker, the planned frame count and a part object of the recorded size: a Map child
that failed silently cannot produce a short video.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from redactor.errors import StitchError
from redactor.containers import content_type, output_name
from redactor.detectors import uses_faces_file
from redactor.records import Plan, SegmentResult
from redactor.remote import s3_url
from redactor.remux import stitch as stitch_parts
from redactor.report import finish_report

from common import obs, s3, versions
from redactor import naming
from common.events import Upload
from common.env import engine_config, require

ENV = require("RAW_BUCKET", "WORK_BUCKET", "OUTPUT_BUCKET")
CONFIG = engine_config()


COLLECT_THREADS = 32  # concurrent small requests (result records, detection sidecars) while collecting


def _collect(prefix: str, plan: Plan, parts_dir: Path) -> tuple[list[SegmentResult], list[int]]:
    """Every planned part (as an s3:// object, read in place later) with its detections (downloaded: the
    report reads them) and its size; StitchError if any is missing, incomplete or inconsistent. The records
    and sidecars are fetched concurrently; the parts' sizes come from one listing."""
    work = ENV["WORK_BUCKET"]
    present = set(s3.list_keys(work, f"{prefix}results/"))
    missing = [seg.index for seg in plan.segments if naming.result_key(prefix, seg.index) not in present]
    if missing:
        raise StitchError(f"{len(missing)} of {len(plan.segments)} segment(s) have no result: {missing[:20]}",
                          f"s3://{work}/{prefix}")
    sizes = dict(s3.list_sizes(work, f"{prefix}parts/"))

    def one(seg) -> tuple[SegmentResult, int]:
        record = s3.get_json(work, naming.result_key(prefix, seg.index))
        res = SegmentResult.from_dict(record["result"])
        if res.index != seg.index or res.frames != seg.frames:
            raise StitchError(f"segment {seg.index}: result has index {res.index} and {res.frames} frames, "
                              f"planned {seg.frames}", f"s3://{work}/{res.part}")
        if sizes.get(res.part) != int(record["part_bytes"]):
            raise StitchError(f"segment {seg.index}: part is missing or incomplete", f"s3://{work}/{res.part}")
        part_bytes = sizes[res.part]
        res.part = s3_url(work, res.part)
        res.detections = str(s3.get_to_file(work, res.detections, parts_dir / Path(res.detections).name))
        return res, part_bytes

    with ThreadPoolExecutor(max_workers=COLLECT_THREADS, thread_name_prefix="collect") as pool:
        collected = list(pool.map(one, plan.segments))  # in plan order; the first error is raised
    return [r for r, _ in collected], [n for _, n in collected]


def _config(prefix: str, tmp: Path):
    """The engine settings for the report, with the run's faces file when the detector reads one."""
    if not uses_faces_file(CONFIG):
        return CONFIG
    faces = s3.download(ENV["WORK_BUCKET"], naming.faces_key(prefix), tmp / "faces.json")
    return dataclasses.replace(CONFIG, faces_path=str(faces))


def _clear_stale_failure(key: str) -> None:
    """A successful run removes failed/<key>.json an earlier failed run of the same key left behind."""
    failed = naming.failed_key(key)
    found = s3.client().list_objects_v2(Bucket=ENV["OUTPUT_BUCKET"], Prefix=failed, MaxKeys=1).get("Contents", [])
    if found and found[0]["Key"] == failed:  # a key sorts before every longer key it prefixes
        s3.client().delete_object(Bucket=ENV["OUTPUT_BUCKET"], Key=failed)
        obs.logger.info("removed the failure record of an earlier run", extra={"failed_key": failed})


def _claim(run: Upload, execution: str | None, status: str) -> bool:
    claimed, found = versions.claim(ENV["WORK_BUCKET"], run.key, {
        "sequencer": run.sequencer or "", "version": run.version, "execution": execution, "status": status})
    if not claimed:
        obs.logger.warning("a newer upload of the key owns its outputs: this run leaves them alone",
                           extra={"newer": found})
    return claimed


def _withdraw(written: dict[str, str | None]) -> None:
    """Delete the object versions this run wrote (a newer upload claimed the key while it wrote them): the
    newer run's versions stay, or become, the current ones."""
    for key, version_id in written.items():
        kw = {"VersionId": version_id} if version_id else {}
        s3.client().delete_object(Bucket=ENV["OUTPUT_BUCKET"], Key=key, **kw)


def _superseded(run: Upload, keys: tuple[str, str, str]) -> dict:
    deleted = s3.delete_prefix(ENV["WORK_BUCKET"], run.work_prefix)
    obs.logger.info("superseded by a newer upload", extra={"work_objects_deleted": deleted})
    return {"output_key": keys[0], "report_key": keys[1], "report_html_key": keys[2], "frames": 0, "bytes": 0,
            "superseded": True}


def _redact_output(run: Upload, event: dict, tmp: Path, t0: float):
    """Collect the parts, stitch them with the source's audio into ``tmp``, and build the report and its page."""
    bucket, key, version, prefix = run.bucket, run.key, run.version, run.work_prefix
    plan = Plan.from_dict(s3.get_json(ENV["WORK_BUCKET"], naming.plan_key(prefix)))
    results, part_sizes = _collect(prefix, plan, tmp / "parts")
    t_collect = time.monotonic()
    plan.source.path = s3_url(bucket, key, version)  # the engine reads the original audio from here
    output = tmp / "out" / output_name(Path(key).name)
    output.parent.mkdir()
    stitched = stitch_parts(plan, results, str(output), CONFIG, part_sizes=part_sizes)
    t_stitch = time.monotonic()
    plan_seconds = float((event.get("plan") or {}).get("plan_seconds") or 0.0)
    timings = {"plan": plan_seconds, "redact_wall_sum": round(sum(r.wall_seconds for r in results), 3),
               "collect": round(t_collect - t0, 3), "stitch": round(t_stitch - t_collect, 3)}
    # reads the local detection sidecars (and the run's faces file, when the detector has one)
    report = finish_report(plan, results, stitched, timings, _config(prefix, tmp))
    report["source"]["path"] = f"s3://{bucket}/{key}"
    report["source"]["version"] = version
    report["source"]["sequencer"] = run.sequencer
    report["output"]["output"] = f"s3://{ENV['OUTPUT_BUCKET']}/{naming.output_key(key)}"
    report["work_prefix"] = f"s3://{ENV['WORK_BUCKET']}/{prefix}"
    return output, stitched, report, _report_html(report, output, key)


@obs.handler
def handler(event, context):
    t0 = time.monotonic()
    run = Upload.from_event(event, "stitch")
    key, execution = run.key, event.get("execution")
    obs.logger.append_keys(key=key)
    out_key, rep_key, html_key = naming.output_key(key), naming.report_key(key), naming.report_html_key(key)
    if not _claim(run, execution, "stitching"):
        return _superseded(run, (out_key, rep_key, html_key))
    written: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="stitch-") as tmp:
        output, stitched, report, page = _redact_output(run, event, Path(tmp), t0)
        video: dict = {}
        # all or nothing: aborted on any failure
        s3.upload_multipart(output, ENV["OUTPUT_BUCKET"], out_key, content_type(out_key), written=video)
        written[out_key] = video.get("VersionId")
    try:
        written[rep_key] = s3.put_json(ENV["OUTPUT_BUCKET"], rep_key, report)
        written[html_key] = _put_report_html(html_key, page)
    except Exception:
        _withdraw({k: v for k, v in written.items() if k != html_key})  # no video without its reports
        raise
    if not _claim(run, execution, "succeeded"):  # a newer upload claimed the key while this run wrote
        _withdraw(written)
        return _superseded(run, (out_key, rep_key, html_key))
    _clear_stale_failure(key)
    deleted = s3.delete_prefix(ENV["WORK_BUCKET"], run.work_prefix)
    obs.logger.info("stitched", extra={"output": out_key, "frames": stitched.frames, "work_objects_deleted": deleted})
    obs.metrics.add_metric(name="VideosRedacted", unit=obs.MetricUnit.Count, value=1)
    obs.metrics.add_metric(name="OutputBytes", unit=obs.MetricUnit.Bytes, value=stitched.bytes)
    return {"output_key": out_key, "report_key": rep_key, "report_html_key": html_key, "frames": stitched.frames,
            "bytes": stitched.bytes, "superseded": False}


# --- the visual report (redactor/report_html.py): rendered from the local redacted output, before upload ---
def _report_html(report: dict, output: Path, key: str) -> str:
    """The HTML page for this run; its render time goes into the JSON report's timings."""
    from redactor.report_html import render

    t0 = time.monotonic()
    page = render(report, str(output), title=Path(key).name)
    report["timings"]["report_html"] = round(time.monotonic() - t0, 3)
    return page


def _put_report_html(html_key: str, page: str) -> str | None:
    return s3.client().put_object(Bucket=ENV["OUTPUT_BUCKET"], Key=html_key, Body=page.encode("utf-8"),
                                  ContentType="text/html; charset=utf-8").get("VersionId")
