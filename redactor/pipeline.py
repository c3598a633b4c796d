"""Run the whole job on one machine: plan -> redact every segment (process pool) -> stitch -> report.

This is the same sequence of stage calls the Step Functions workflow makes, with the same records.

Nothing is left behind however the run ends: on an error, Ctrl-C or SIGTERM (see ``redactor.cli``) the
``finally`` below removes the work directory (the pool has already ended its workers); if this process is
killed outright, its workers die with it and a :class:`~redactor.pool.Janitor` removes the work directory,
the partial output and an output whose report was never written."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .config import Config
from .errors import InputError
from .pool import Janitor
from .probe import plan as make_plan
from .detectors import uses_faces_file
from .report import finish_report, partial_path, write_json_atomic, write_text_atomic
from .segment import redact_segments
from .remux import _temp_path, check_output, output_format, stitch


def redact_file(source: str, output: str, config: Config | None = None, report_path: str | None = None,
                detector_factory=None, progress=None, on_plan=None, report_html_path: str | None = None,
                segments_runner=None) -> dict:
    """``segments_runner``: what redacts the planned segments (``redact_segments``'s signature and result;
    default: this machine's process pool). The live function passes one that fans segments out."""
    config = config or Config()
    output_format(output)  # fail early on an unsupported output type
    if os.path.abspath(source) == os.path.abspath(output):
        raise InputError("output path is the input file; refusing to overwrite the source", output)
    timings = {}
    t0 = time.perf_counter()
    plan = make_plan(source, config)
    check_output(plan.source, output, config)  # the output container can hold what the source has
    timings["plan"] = time.perf_counter() - t0
    if on_plan:
        on_plan(plan)
    janitor = Janitor()
    work = None
    try:
        work = tempfile.mkdtemp(prefix="redactor-", dir=os.environ.get("REDACTOR_WORK_DIR"))
        janitor.add(work)
        janitor.add(_temp_path(output))
        t1 = time.perf_counter()
        if uses_faces_file(config) and not config.faces_path:
            raise InputError("detector rekognition-video runs in the AWS workflow (its video job needs the file in "
                             "S3); locally it only applies a faces file given as faces_path (--faces)", source)
        results = (segments_runner or redact_segments)(source, plan.segments, config, work,
                                                       detector_factory=detector_factory, progress=progress,
                                                       source_info=plan.source)
        timings["redact"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        result = stitch(plan, results, output, config)
        if report_path:  # killed before the report is written: no output without its report
            janitor.add(output)
            janitor.add(str(Path(report_path).with_name(f".{Path(report_path).name}.partial-{os.getpid()}")))
        if report_html_path:  # ... nor without its HTML report (nor a JSON report written just before it)
            janitor.add(output)
            janitor.add(partial_path(report_html_path))
            if report_path:
                janitor.add(report_path)
        timings["stitch"] = time.perf_counter() - t2
        timings["total"] = time.perf_counter() - t0
        report = finish_report(plan, results, result, timings, config)
        page = None
        if report_html_path:  # the visual report, from the redacted output (redactor/report_html.py)
            t3 = time.perf_counter()
            try:
                from .report_html import render
                page = render(report, output)
            except BaseException:
                Path(output).unlink(missing_ok=True)  # no output without its report
                raise
            report["timings"]["report_html"] = round(time.perf_counter() - t3, 4)
        if report_path:
            try:
                write_json_atomic(report_path, report)
            except BaseException:
                Path(output).unlink(missing_ok=True)  # no output without its report
                raise
        if page is not None:
            try:
                write_text_atomic(report_html_path, page)
            except BaseException:
                Path(output).unlink(missing_ok=True)
                if report_path:
                    Path(report_path).unlink(missing_ok=True)
                raise
        return report
    finally:
        if work:
            shutil.rmtree(work, ignore_errors=True)
        janitor.close()
