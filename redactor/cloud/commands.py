"""``redactor cloud submit|status|wait|fetch|retry``: the deployed pipeline from the command line."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path, PurePosixPath

from .. import naming
from ..errors import InputError
from .aws import Aws, error_code, translated
from .errors import Interrupted, NotFinished, NotUploaded, ReportMismatch, RetryRefused, RunFailed
from .runs import RunState, Upload, find_upload, run_state
from .stack import Deployment, discover
from .upload import upload

#: a run that has not started this long after its upload will not start by itself (starter failed: see the
#: stack's UploadsNotStarted alarm and the starter's dead-letter queue)
QUEUE_PATIENCE_SECONDS = 300.0


def _connect(a) -> tuple[Aws, Deployment]:
    aws = Aws(region=a.region, profile=a.profile)
    with translated():
        return aws, discover(aws.cfn, aws.region, a.stack)


def _show(a) -> bool:
    return sys.stderr.isatty() and not getattr(a, "quiet", False)


def key_for(path: str, prefix: str | None) -> str:
    name = os.path.basename(path)
    prefix = (prefix or "").strip("/")
    return f"{prefix}/{name}" if prefix else name


def cmd_submit(a) -> int:
    for path in a.files:  # everything is checked before anything is uploaded
        if not os.path.isfile(path):
            raise InputError("no such file", path)
    aws, dep = _connect(a)
    planned = []
    for path in a.files:
        key = key_for(path, a.key)
        dep.check_key(key, path)
        if any(key == k for _, k in planned):
            raise InputError(f"two of the files would be uploaded as s3://{dep.raw_bucket}/{key}", path)
        planned.append((path, key))
    uploads = []
    with translated():
        for path, key in planned:
            done = upload(aws.s3, path, dep.raw_bucket, key, _show(a))
            up = find_upload(aws.s3, dep, key, done.version)
            uploads.append(up)
            name = naming.execution_name(dep.raw_bucket, key, up.run_id)
            print(f"uploaded {path} -> s3://{dep.raw_bucket}/{key} (version {up.version or 'none: unversioned'})")
            print(f"  run:     {name}")
            print(f"  console: {dep.console_url(dep.execution_arn(name))}")
        sys.stdout.flush()
        return _follow(aws, dep, uploads, a) if a.wait else 0


def _uploads(aws: Aws, dep: Deployment, keys: list[str], version: str | None) -> list[Upload]:
    if version and len(keys) != 1:
        raise InputError("--version names one upload: give exactly one key with it")
    keys = list(dict.fromkeys(keys))
    for key in keys:
        dep.check_key(key)
    return [find_upload(aws.s3, dep, key, version) for key in keys]


def cmd_status(a) -> int:
    if not (a.all or a.keys):
        raise InputError("give one or more keys, or --all")
    aws, dep = _connect(a)
    with translated():
        keys = _all_keys(aws, dep) if a.all else a.keys
        states = [run_state(aws.s3, aws.sfn, dep, u) for u in _uploads(aws, dep, keys, a.version)]
    if len(states) == 1:
        print(states[0].line())
    else:
        print(_table(states))
    return 4 if any(s.state == "failed" for s in states) else 0


def _all_keys(aws: Aws, dep: Deployment) -> list[str]:
    keys = []
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=dep.raw_bucket):
        keys += [o["Key"] for o in page.get("Contents") or []
                 if PurePosixPath(o["Key"]).suffix.lower() in dep.suffixes]
    return keys


def _table(states: list[RunState]) -> str:
    rows = [("KEY", "ELAPSED", "STATE")] + [(s.upload.key, s.elapsed_text, s.detail()) for s in states]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows)


def cmd_wait(a) -> int:
    aws, dep = _connect(a)
    with translated():
        return _follow(aws, dep, _uploads(aws, dep, a.keys, a.version), a)


def _follow(aws: Aws, dep: Deployment, uploads: list[Upload], a) -> int:
    """Poll every upload's run until each is done or failed; a bar per run on a terminal (segments redacted
    of the Map Run's total), else one line on stderr whenever a run's state changes."""
    bars = _Bars(_show(a))
    final: dict[int, RunState] = {}
    queued_since: dict[int, float] = {}  # this machine's clock: no skew against S3's LastModified
    try:
        while len(final) < len(uploads):
            for i, up in enumerate(uploads):
                if i in final:
                    continue
                state = run_state(aws.s3, aws.sfn, dep, up)
                bars.show(i, state)
                if state.finished:
                    final[i] = state
                elif state.state != "queued":
                    queued_since.pop(i, None)
                elif time.monotonic() - queued_since.setdefault(i, time.monotonic()) > QUEUE_PATIENCE_SECONDS:
                    raise NotFinished(f"uploaded, but no run started in {int(QUEUE_PATIENCE_SECONDS)} s of "
                                      "waiting: the stack's starter did not take it (see its UploadsNotStarted "
                                      "alarm)", up.key)
            if len(final) < len(uploads):
                time.sleep(a.interval)
    except KeyboardInterrupt:
        raise Interrupted("stopped waiting; the runs go on in AWS ('redactor cloud status KEY')") from None
    finally:
        bars.close()
    return _outcome(dep, [final[i] for i in range(len(uploads))])


def _outcome(dep: Deployment, states: list[RunState]) -> int:
    failed = [s for s in states if s.state == "failed"]
    for s in states:
        if s.state == "done":
            print(f"{s.upload.key}: done in {s.elapsed_text}: "
                  + ", ".join(f"s3://{dep.output_bucket}/{k}" for k in s.outputs))
        elif s.state == "superseded":
            print(f"{s.upload.key}: {s.detail()}: version {s.upload.version} left them alone")
    for s in failed:
        e = RunFailed(f"{s.error}: {s.cause}", s.upload.key)
        print(f"redactor: {e.kind}: {e.one_line()}", file=sys.stderr)
    return RunFailed.exit_code if failed else 0


class _Bars:
    def __init__(self, enabled: bool):
        self.enabled, self.bars, self.last = enabled, {}, {}
        if enabled:
            try:
                from tqdm import tqdm  # noqa: F401
            except ImportError:  # pragma: no cover
                self.enabled = False

    def show(self, i: int, state: RunState) -> None:
        if not self.enabled:
            line = f"{state.upload.key}: {state.detail()}"
            if self.last.get(i) != line:
                print(line, file=sys.stderr, flush=True)
                self.last[i] = line
            return
        from tqdm import tqdm

        bar = self.bars.get(i)
        if bar is None:
            bar = self.bars[i] = tqdm(total=0, unit="segment", position=i, file=sys.stderr, dynamic_ncols=True,
                                      desc=state.upload.key)
        if state.total_items is not None:
            bar.total = state.total_items
            bar.n = state.done_items or 0
        bar.set_postfix_str(state.state, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def cmd_fetch(a) -> int:
    aws, dep = _connect(a)
    out_dir = Path(a.output or ".")
    with translated():
        for up in _uploads(aws, dep, a.keys, a.version):
            state = run_state(aws.s3, aws.sfn, dep, up)
            if state.state == "failed":
                raise RunFailed(f"{state.error}: {state.cause}", up.key)
            if state.state == "superseded":
                raise ReportMismatch(f"version {up.version} was {state.detail()}: fetch it without --version",
                                     up.key)
            if state.state != "done":
                raise NotFinished(f"{state.detail()}: 'redactor cloud wait {up.key}', then fetch", up.key)
            paths = fetch_outputs(aws.s3, dep, up, out_dir)
            print(f"fetched {up.key} (version {up.version or 'none'}): {paths[0]}, {paths[1]}")
            print(f"  HTML report, to open in a browser: {paths[2].resolve().as_uri()}")
    return 0


def _local(out_dir: Path, key: str) -> Path:
    path = (out_dir / key).resolve()
    if not path.is_relative_to(out_dir.resolve()):
        raise InputError(f"the output key {key!r} would be written outside {out_dir}", key)
    return path


def _versions(s3, bucket: str, key: str):
    """Every stored version of ``key`` (not delete markers), newest first."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        yield from (v for v in page.get("Versions") or [] if v["Key"] == key)


def _get(s3, bucket: str, key: str, version: str) -> bytes:
    kw = {} if version in (None, "null") else {"VersionId": version}
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def _report_for(s3, dep: Deployment, up: Upload) -> tuple[dict, dict, bytes]:
    """(the JSON report of ``up``'s version, its object version entry, its bytes): the newest report whose
    source.version is the upload's."""
    key = naming.report_key(up.key)
    for v in _versions(s3, dep.output_bucket, key):
        body = _get(s3, dep.output_bucket, key, v["VersionId"])
        try:
            report = json.loads(body)
        except ValueError:
            continue
        if (report.get("source") or {}).get("version") == up.version:
            return report, v, body
    raise ReportMismatch(f"no report in s3://{dep.output_bucket}/{key} is for version {up.version}", up.key)


def fetch_outputs(s3, dep: Deployment, up: Upload, out_dir: Path) -> list[Path]:
    """Download the redacted video, the JSON and the HTML report of the upload version ``up``; each checked to
    belong to it (the report names the version; the video has the size and the page the creation time the
    report records). Files are written under a temporary name and renamed when complete."""
    report, report_version, report_body = _report_for(s3, dep, up)
    video_key, html_key = naming.output_key(up.key), naming.report_html_key(up.key)
    size = int((report.get("output") or {}).get("bytes") or -1)
    video = next((v for v in _versions(s3, dep.output_bucket, video_key) if int(v["Size"]) == size
                  and v["LastModified"] <= report_version["LastModified"]), None)
    stamp = f"created {report.get('created')}"
    html = next((body for v in _versions(s3, dep.output_bucket, html_key)
                 if v["LastModified"] >= report_version["LastModified"]
                 for body in [_get(s3, dep.output_bucket, html_key, v["VersionId"])]
                 if stamp.encode() in body), None)
    if video is None or html is None:
        missing = " and ".join(n for n, x in (("video", video), ("HTML report", html)) if x is None)
        raise ReportMismatch(f"the {missing} of the run of version {up.version} is not in "
                             f"s3://{dep.output_bucket}/{naming.OUTPUT_PREFIX}", up.key)
    paths = [_local(out_dir, k) for k in (video_key, naming.report_key(up.key), html_key)]
    extra = {} if video["VersionId"] in (None, "null") else {"VersionId": video["VersionId"]}
    _write(paths[0], lambda tmp: s3.download_file(dep.output_bucket, video_key, str(tmp), ExtraArgs=extra))
    _write(paths[1], lambda tmp: tmp.write_bytes(report_body))
    _write(paths[2], lambda tmp: tmp.write_bytes(html))
    return paths


def _write(path: Path, fill) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        fill(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cmd_retry(a) -> int:
    aws, dep = _connect(a)
    dep.check_key(a.key)
    with translated():
        up = _retry_upload(aws, dep, a.key, a.version)
        state = run_state(aws.s3, aws.sfn, dep, up)
        if state.state != "failed":
            why = {"done": "its run succeeded", "queued": "its run has not started yet"}.get(
                state.state, f"its run is still going ({state.detail()})")
            raise RetryRefused(f"nothing to retry: {why}", a.key)
        sequencer = json.loads(state.execution.get("input") or "{}").get("sequencer")
        name = naming.retry_execution_name(dep.raw_bucket, up.key, up.version, state.attempts + 1)
        run_input = naming.execution_input(dep.raw_bucket, up.key, up.version, sequencer, execution=name,
                                           etag=up.etag, size=up.size)
        try:
            arn = aws.sfn.start_execution(stateMachineArn=dep.state_machine_arn, name=name,
                                          input=json.dumps(run_input))["executionArn"]
        except Exception as e:  # noqa: BLE001
            if error_code(e) != "ExecutionAlreadyExists":
                raise
            arn = dep.execution_arn(name)
    print(f"retrying {up.key} (version {up.version or 'none'}, attempt {state.attempts + 1}): {name}")
    print(f"  console: {dep.console_url(arn)}")
    sys.stdout.flush()
    return _follow(aws, dep, [up], a) if a.wait else 0


def _retry_upload(aws: Aws, dep: Deployment, key: str, version: str | None) -> Upload:
    """The version to run again: --version, else the key's latest; when the key has none left, the version
    its failure record names, to say plainly that it is gone."""
    try:
        return find_upload(aws.s3, dep, key, version)
    except NotUploaded:
        if version:
            raise RetryRefused(f"version {version} is no longer in s3://{dep.raw_bucket} (expired or deleted): "
                               "upload the file again", key) from None
        try:
            record = json.loads(_get(aws.s3, dep.output_bucket, naming.failed_key(key), None))
        except Exception as e:  # noqa: BLE001
            if error_code(e) not in ("NoSuchKey", "404") and not isinstance(e, ValueError):
                raise
            raise RetryRefused(f"{key} is not in s3://{dep.raw_bucket} and has no failed run", key) from None
        gone = (record.get("source") or {}).get("version")
        raise RetryRefused(f"the failed upload (version {gone}) is no longer in s3://{dep.raw_bucket} (expired "
                           "after the raw bucket's retention, or deleted): upload the file again", key) from None


def cmd_play(a) -> int:
    """Serve the stream's playlist from the stack's output bucket (redactor/hls_presign.py) until Ctrl-C."""
    from botocore.config import Config as BotoConfig

    from .. import hls_presign

    aws, dep = _connect(a)
    a.bucket = dep.output_bucket
    s3 = aws.session.client("s3", config=BotoConfig(signature_version="s3v4"))
    return hls_presign.run(a, s3)


def cmd_policy(a) -> int:
    from .policy import client_policy

    _, dep = _connect(a)
    print(json.dumps(client_policy(dep, live=a.live), indent=2))
    return 0
