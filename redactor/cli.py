"""``redactor`` command line: ``redact``, ``probe``, ``fetch-model``, ``cloud`` (redactor/cloud: the deployed
pipeline).

Exit codes: 0 ok, 2 bad input/usage, 3 setup (model), 4 internal or detection failure, 130 interrupted
(SIGINT), 143 terminated (SIGTERM; 129 for SIGHUP). Errors are one line on stderr naming the file and the
problem.

SIGTERM is how containers, batch schedulers and service managers stop a job: it is turned into an exception in
the main thread, so the same cleanup as Ctrl-C runs (the pool ends its workers, the work directory and any
partial output are removed) before the process exits with 128 + the signal number.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from . import __version__
from .config import DETECTORS, INFERENCE, MASKS, PRESETS, STYLES, Config
from .errors import RedactorError


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP (a BaseException, like KeyboardInterrupt: nothing that
    catches ``Exception`` may swallow it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame):
    # one cleanup is enough: a repeated signal must not interrupt the cleanup the first one started
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


def _install_signal_handlers() -> dict:
    """SIGTERM/SIGHUP -> :class:`Terminated`; returns what to restore (nothing outside the main thread, where
    Python cannot set handlers, or for a signal the caller already handles its own way)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, _on_signal)
    return previous


def _progress(total_frames: int, enabled: bool):
    if not enabled:
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None, lambda: None
    bar = tqdm(total=total_frames, unit="frame", dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
    return bar.update, bar.close


def cmd_redact(a) -> int:
    from .pipeline import redact_file
    settings = {k: v for k, v in {
        "workers": a.workers, "segment_seconds": a.segment_seconds, "style": a.style, "mask": a.mask,
        "threshold": a.threshold, "enlarge": a.enlarge, "hold": a.hold, "detect_every": a.detect_every,
        "detect_ms": a.detect_ms, "fine_ms": a.fine_ms, "track_ms": a.track_ms,
        "detector": a.detector, "crf": a.crf, "preset": a.preset, "min_face": a.min_face,
        "keep_metadata": a.keep_metadata or None, "drop_audio": a.drop_audio or None,
        "model_path": a.model, "inference": a.inference, "fine_every": a.fine_every, "track_every": a.track_every,
        "coarse_width": a.coarse_width, "rekognition_every": a.rekognition_every,
        "rekognition_ms": a.rekognition_ms, "faces_path": a.faces}.items()
        if v is not None}
    config = Config.from_dict(settings)
    show = sys.stderr.isatty() and not a.quiet
    state = {}

    def on_plan(plan):
        state["update"], state["close"] = _progress(plan.source.frame_count, show)

    def progress(n):
        if state.get("update"):
            state["update"](n)

    try:
        report = redact_file(a.input, a.output, config, report_path=a.report, progress=progress, on_plan=on_plan,
                             report_html_path=a.report_html)
    finally:
        if state.get("close"):
            state["close"]()
    if not a.quiet:
        print(f"redacted {a.input} -> {a.output}: {summary(report)}" + (f"; report: {a.report}" if a.report else "")
              + (f"; HTML report: {a.report_html}" if a.report_html else ""))
    return 0


def cmd_live(a) -> int:
    """``redactor live SOURCE -o OUTDIR``: a directory receiving chunks, or a file/URL cut into chunks
    (docs/live.md)."""
    import os
    from .errors import InputError
    from .live import LiveSettings, LocalStore, LocalStream, Publisher, run_directory, run_stream
    settings = {k: v for k, v in {"workers": a.workers, "detector": a.detector, "model_path": a.model,
                                  "keep_metadata": a.keep_metadata or None, "drop_audio": a.drop_audio or None
                                  }.items() if v is not None}
    live = LiveSettings(gap_wait=a.gap_wait, keep_metadata=a.keep_metadata, program_date_time=a.program_date_time)

    def show(o):
        if not a.quiet:
            what = f"{o.status}" + (f" ({o.record}: {o.error})" if o.record and o.error else "")
            print(f"{o.name}: {what}" + (f", {o.frames} frames in {o.redact_seconds:.1f}s, listed "
                                         f"{o.latency:.1f}s after it was taken" if o.frames else ""), flush=True)
    pub = Publisher(LocalStore(a.output), live)
    if pub.playlist()[0].ended:
        raise InputError("holds a stream that has ended (EXT-X-ENDLIST); write to another directory", a.output)
    stream = LocalStream(pub, Config.from_dict(settings), on_chunk=show)
    previous = _install_signal_handlers()  # SIGTERM: the same clean-up as Ctrl-C
    try:
        if os.path.isdir(a.source):
            run_directory(stream, a.source, idle=a.idle, settle=a.settle)
        else:
            run_stream(stream, a.source, chunk_seconds=a.chunk_seconds, native_rate=not a.as_fast_as_possible)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not a.quiet:
        print(f"stream ended: {os.path.join(a.output, 'index.m3u8')}")
    return 0


def _live_parser(sub) -> None:
    lv = sub.add_parser("live", help="redact a live stream's chunks into HLS (OUTDIR/index.m3u8, docs/live.md)")
    lv.add_argument("source", help="a directory receiving chunk files, or a video file / stream URL")
    lv.add_argument("-o", "--output", required=True, help="output directory (index.m3u8 + segments)")
    lv.add_argument("--idle", type=float, help="end the stream after this many seconds without a new chunk")
    lv.add_argument("--settle", type=float, default=1.0,
                    help="a chunk file is complete once unchanged for this many seconds (default 1)")
    lv.add_argument("--gap-wait", type=float, default=30.0,
                    help="seconds to wait for an earlier chunk before it becomes a gap (default 30)")
    lv.add_argument("--chunk-seconds", type=float, default=4.0,
                    help="file/URL source: chunk length, cut at its keyframes (default 4)")
    lv.add_argument("--as-fast-as-possible", action="store_true",
                    help="file source: read it as fast as possible instead of at its native rate")
    lv.add_argument("--program-date-time", action="store_true",
                    help="write EXT-X-PROGRAM-DATE-TIME (each chunk's recorded time: metadata, off by default)")
    lv.add_argument("--workers", type=int)
    lv.add_argument("--detector", choices=DETECTORS)
    lv.add_argument("--model", help="path to centerface.onnx")
    lv.add_argument("--keep-metadata", action="store_true")
    lv.add_argument("--drop-audio", action="store_true")
    lv.add_argument("-q", "--quiet", action="store_true")
    lv.set_defaults(func=cmd_live)


def summary(report: dict) -> str:
    """The run in one line: faces are counted on the frames the detector ran on (at most all of them)."""
    c = report["counts"]
    large = c.get("frames_over_20_pct_redacted")
    return (f"{c['frames']} frames, faces found on {c['frames_with_faces']} of {c['detected_frames']} detection "
            f"frames, {c['redacted_frames']} frames redacted"
            + (f" ({large} more than 20 % of the picture, {c['frames_over_50_pct_redacted']} more than 50 %: worth "
               "a look)" if large else "")
            + f", {report['timings']['total']:.1f}s ({report['frames_per_second']} frames/s)")


def cmd_probe(a) -> int:
    from .probe import plan
    config = Config.from_dict({"segment_seconds": a.segment_seconds} if a.segment_seconds else {})
    p = plan(a.input, config).to_dict()
    if not a.frames:
        for s in p["segments"]:
            s.pop("frame_pts", None)
    print(json.dumps(p, indent=1))
    return 0


def cmd_fetch_model(a) -> int:
    from .model import fetch_centerface
    path = fetch_centerface(a.dest)
    print(f"model ready: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="redactor", description="Remove faces from videos, frame-exact.")
    p.add_argument("--version", action="version", version=f"redactor {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("redact", help="redact faces in a video")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True,
                   help="output video: .mp4, .m4v, .mov, .mkv, .ts, .mts or .m2ts (docs/architecture.md: Output container per upload)")
    r.add_argument("--report", help="write the JSON report here")
    r.add_argument("--report-html", help="write the visual report (one self-contained HTML page) here")
    r.add_argument("--workers", type=int, help="worker processes (default: usable cores)")
    r.add_argument("--segment-seconds", type=float)
    r.add_argument("--style", choices=STYLES)
    r.add_argument("--mask", choices=MASKS)
    r.add_argument("--threshold", type=float)
    r.add_argument("--enlarge", type=float, help="box enlargement factor (default 1.3)")
    r.add_argument("--hold", type=int, help="frames a detection also covers before/after (default 2)")
    r.add_argument("--detect-ms", type=float,
                   help="coarse (whole-frame) detection period in ms, whole frames of the video's rate (default 100: "
                        "every 3rd frame at 30 fps, every frame below 20 fps)")
    r.add_argument("--fine-ms", type=float, help="fine (small-face) detection period in ms, 0 = off (default 1000)")
    r.add_argument("--track-ms", type=float, help="small-face tracking step in ms (default: the coarse period)")
    r.add_argument("--detect-every", type=int,
                   help="coarse detection every k-th frame, whatever the frame rate (overrides --detect-ms)")
    r.add_argument("--fine-every", type=int,
                   help="fine detection every K-th frame, 0 = off (overrides --fine-ms)")
    r.add_argument("--track-every", type=int,
                   help="small-face tracking step in frames, dividing the coarse period (overrides --track-ms)")
    r.add_argument("--coarse-width", type=int, help="coarse pass inference width (default: Config.coarse_width)")
    r.add_argument("--min-face", type=int, help="smallest face width in px to resolve (default 16; above the model's fine face size, 32 px for yunet, 48 for centerface, the fine pass shrinks the frame: faster, blind below it)")
    r.add_argument("--detector", choices=DETECTORS)
    r.add_argument("--rekognition-ms", type=float,
                   help="detector rekognition: DetectFaces sampling period in ms, whole frames of the video's rate "
                        "(default 200: every 6th frame at 30 fps, every 2nd at 10 fps)")
    r.add_argument("--rekognition-every", type=int,
                   help="detector rekognition: send every k-th frame to DetectFaces, whatever the frame rate "
                        "(overrides --rekognition-ms; 1 = every frame)")
    r.add_argument("--faces", help="detector rekognition-video: faces JSON written by the AWS workflow's video job")
    r.add_argument("--crf", type=int)
    r.add_argument("--preset", choices=PRESETS)
    r.add_argument("--model", help="path to centerface.onnx, used by both local detectors (yunet checks its boxes with it; default: see 'redactor fetch-model')")
    # no argparse choices: "--inference openvino" gets the setting's own error, which says why OpenVINO is not
    # a runtime (config.REMOVED_INFERENCE), not just "invalid choice"
    r.add_argument("--inference", metavar="{" + ",".join(INFERENCE) + "}",
                   help="the local models' runtime: opencv (OpenCV DNN, as in the Lambda layer; the only one, "
                        "the default); auto = opencv; openvino is not supported (docs/detectors.md)")
    r.add_argument("--keep-metadata", action="store_true", help="keep container/stream metadata (GPS...)")
    r.add_argument("--drop-audio", action="store_true")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(func=cmd_redact)
    pr = sub.add_parser("probe", help="print the plan (source facts + segments) as JSON")
    pr.add_argument("input")
    pr.add_argument("--segment-seconds", type=float)
    pr.add_argument("--frames", action="store_true", help="include every frame's pts")
    pr.set_defaults(func=cmd_probe)
    fm = sub.add_parser("fetch-model", help="download and verify the CenterFace model (setup; both local detectors need it)")
    fm.add_argument("--dest", help="where to store it (default ~/.cache/redactor/centerface.onnx)")
    fm.set_defaults(func=cmd_fetch_model)
    from .cloud import add_parser as add_cloud_parser
    add_cloud_parser(sub)
    _live_parser(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    previous = {}
    try:
        if args.cmd == "redact":
            previous = _install_signal_handlers()
        return args.func(args)
    except RedactorError as e:
        print(f"redactor: {e.kind}: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("redactor: interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"redactor: terminated by {signal.Signals(e.signum).name}; workers stopped, temporary files removed",
              file=sys.stderr)
        return 128 + e.signum
    except Exception as e:  # noqa: BLE001
        print(f"redactor: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 4
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
