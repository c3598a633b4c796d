"""Stitch's step: check every planned part, remux parts + the original audio into the output bucket, write the
report beside it, then clean the run's work area. The Stitch handler parses its event and calls ``stitch_run``.

Parts and the source are read in place (ranged GETs, one part open at a time): the parts are fetched ahead in
order with concurrent GETs (a bounded number of bytes ahead), the source's audio with a concurrent read-ahead;
/tmp holds only the output being written (plus the small detection sidecars the report reads), which is then
uploaded as a concurrent multipart upload that is aborted on any failure (never a partial object).

The parts are rediscovered from the plan in S3 (never from the Map's output), and each one must have its
results/NNNNN.json commit marker, the planned frame count and a part object of the recorded size: a Map child
that failed silently cannot produce a short video.

Which upload of a key owns its outputs is claimed through ``versions`` before the run writes and again once it
has written: a run a newer upload superseded leaves the key's outputs alone (and withdraws what it wrote).
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from redactor import naming
from redactor.config import Config
from redactor.containers import content_type, output_name
from redactor.detectors import uses_faces_file
from redactor.errors import StitchError
from redactor.records import Plan, SegmentResult, StitchResult
from redactor.remote import s3_url
from redactor.remux import stitch as stitch_parts
from redactor.report import StoredRun, finish_report

from . import obs, s3, versions
from .events import Upload

COLLECT_THREADS = 32  # concurrent small requests (result records, detection sidecars) while collecting
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Buckets:
    """The buckets Stitch reads (the upload's own bucket comes with the event) and writes."""
    work: str
    output: str


@dataclass(frozen=True)
class OutputKeys:
    """The output bucket's keys of an upload's redacted video, JSON report and HTML report."""
    video: str
    report: str
    page: str

    @classmethod
    def of(cls, key: str) -> OutputKeys:
        return cls(naming.output_key(key), naming.report_key(key), naming.report_html_key(key))


@dataclass(frozen=True)
class Outcome:
    """What Stitch returns to the workflow (``superseded``: a newer upload owns the key's outputs)."""
    keys: OutputKeys
    frames: int = 0
    bytes: int = 0
    superseded: bool = False

    def to_dict(self) -> dict:
        return {"output_key": self.keys.video, "report_key": self.keys.report, "report_html_key": self.keys.page,
                "frames": self.frames, "bytes": self.bytes, "superseded": self.superseded}


@dataclass(frozen=True)
class Redacted:
    """The run's output, built in a local directory: the video, its stitch record, its report and its page."""
    video: Path
    stitched: StitchResult
    report: dict
    page: str


@dataclass(frozen=True)
class Run:
    """One Stitch invocation: the upload, its execution, where it reads and writes, and the engine settings."""
    upload: Upload
    execution: str | None
    buckets: Buckets
    config: Config
    plan_seconds: float = 0.0

    def claim(self, status: str) -> bool:
        """Claim the key's outputs for this upload (False: a newer upload owns them)."""
        up = self.upload
        claimed, found = versions.claim(self.buckets.work, up.key, {
            "sequencer": up.sequencer or "", "version": up.version, "execution": self.execution, "status": status})
        if not claimed:
            obs.logger.warning("a newer upload of the key owns its outputs: this run leaves them alone",
                               extra={"newer": found})
        return claimed


def stitch_run(run: Run, started: float) -> Outcome:
    """Stitch the run's parts into the output bucket, with its reports, unless a newer upload of the key owns
    its outputs (before or while this run writes them); ``started``: the invocation's time.monotonic()."""
    keys = OutputKeys.of(run.upload.key)
    if not run.claim("stitching"):
        return _superseded(run, keys)
    with tempfile.TemporaryDirectory(prefix="stitch-") as tmp:
        out = redact_output(run, Path(tmp), started)
        written = {keys.video: _upload_video(run, out.video, keys.video)}
    written.update(_put_reports(run, keys, out, written))
    if not run.claim("succeeded"):  # a newer upload claimed the key while this run wrote
        _withdraw(run.buckets.output, written)
        return _superseded(run, keys)
    _clear_stale_failure(run.buckets.output, run.upload.key)
    deleted = s3.delete_prefix(run.buckets.work, run.upload.work_prefix)
    obs.logger.info("stitched", extra={"output": keys.video, "frames": out.stitched.frames,
                                       "work_objects_deleted": deleted})
    return Outcome(keys, out.stitched.frames, out.stitched.bytes)


def redact_output(run: Run, tmp: Path, started: float) -> Redacted:
    """Collect the parts, stitch them with the source's audio into ``tmp``, and build the report and its page."""
    up, work = run.upload, run.buckets.work
    plan = Plan.from_dict(s3.get_json(work, naming.plan_key(up.work_prefix)))
    results, part_sizes = collect(work, up.work_prefix, plan, tmp / "parts")
    t_collect = time.monotonic()
    plan.source.path = s3_url(up.bucket, up.key, up.version)  # the engine reads the original audio from here
    video = tmp / "out" / output_name(Path(up.key).name)
    video.parent.mkdir()
    stitched = stitch_parts(plan, results, str(video), run.config, part_sizes=part_sizes)
    t_stitch = time.monotonic()
    timings = {"plan": run.plan_seconds, "redact_wall_sum": round(sum(r.wall_seconds for r in results), 3),
               "collect": round(t_collect - started, 3), "stitch": round(t_stitch - t_collect, 3)}
    stored = StoredRun(source=f"s3://{up.bucket}/{up.key}", version=up.version, sequencer=up.sequencer,
                       output=f"s3://{run.buckets.output}/{naming.output_key(up.key)}",
                       work_prefix=f"s3://{work}/{up.work_prefix}")
    # reads the local detection sidecars (and the run's faces file, when the detector has one)
    report = finish_report(plan, results, stitched, timings, _config(run, tmp), stored)
    return Redacted(video, stitched, report, _report_html(report, video, up.key))


def collect(work: str, prefix: str, plan: Plan, parts_dir: Path) -> tuple[list[SegmentResult], list[int]]:
    """Every planned part (as an s3:// object, read in place later) with its detections (downloaded: the
    report reads them) and its size; StitchError if any is missing, incomplete or inconsistent. The records
    and sidecars are fetched concurrently; the parts' sizes come from one listing."""
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


def _config(run: Run, tmp: Path) -> Config:
    """The engine settings for the report, with the run's faces file when the detector reads one."""
    if not uses_faces_file(run.config):
        return run.config
    faces = s3.download(run.buckets.work, naming.faces_key(run.upload.work_prefix), tmp / "faces.json")
    return dataclasses.replace(run.config, faces_path=str(faces))


def _report_html(report: dict, video: Path, key: str) -> str:
    """The HTML page for this run (redactor/report_html.py, rendered from the local redacted video before it is
    uploaded); its render time goes into the JSON report's timings."""
    from redactor.report_html import render

    t0 = time.monotonic()
    page = render(report, str(video), title=Path(key).name)
    report["timings"]["report_html"] = round(time.monotonic() - t0, 3)
    return page


def _upload_video(run: Run, video: Path, key: str) -> str | None:
    """Upload the redacted video, all or nothing (aborted on any failure); returns its VersionId."""
    new: dict = {}
    s3.upload_multipart(video, run.buckets.output, key, content_type(key), written=new)
    return new.get("VersionId")


def _put_reports(run: Run, keys: OutputKeys, out: Redacted, written: dict[str, str | None]) -> dict[str, str | None]:
    """Write the JSON report and the HTML page; on any failure withdraw what was written: no video without its
    reports. Returns the reports' VersionIds."""
    bucket, reports = run.buckets.output, {}
    try:
        reports[keys.report] = s3.put_json(bucket, keys.report, out.report)
        reports[keys.page] = s3.client().put_object(Bucket=bucket, Key=keys.page, Body=out.page.encode("utf-8"),
                                                    ContentType=HTML).get("VersionId")
    except Exception:
        _withdraw(bucket, {**written, **reports})
        raise
    return reports


def _withdraw(bucket: str, written: dict[str, str | None]) -> None:
    """Delete the object versions this run wrote (a newer upload claimed the key while it wrote them, or a
    report could not be written): the newer run's versions stay, or become, the current ones."""
    for key, version_id in written.items():
        kw = {"VersionId": version_id} if version_id else {}
        s3.client().delete_object(Bucket=bucket, Key=key, **kw)


def _clear_stale_failure(bucket: str, key: str) -> None:
    """A successful run removes failed/<key>.json an earlier failed run of the same key left behind."""
    failed = naming.failed_key(key)
    found = s3.client().list_objects_v2(Bucket=bucket, Prefix=failed, MaxKeys=1).get("Contents", [])
    if found and found[0]["Key"] == failed:  # a key sorts before every longer key it prefixes
        s3.client().delete_object(Bucket=bucket, Key=failed)
        obs.logger.info("removed the failure record of an earlier run", extra={"failed_key": failed})


def _superseded(run: Run, keys: OutputKeys) -> Outcome:
    deleted = s3.delete_prefix(run.buckets.work, run.upload.work_prefix)
    obs.logger.info("superseded by a newer upload", extra={"work_objects_deleted": deleted})
    return Outcome(keys, superseded=True)
