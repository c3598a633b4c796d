"""Taking one chunk from its file to its place in the playlist (local and cloud alike), and the local stream:
``redactor live SOURCE -o OUTDIR`` (a directory receiving chunks, or a file/URL cut into chunks)."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field

from ..config import Config
from ..errors import ModelError, RedactorError
from ..hls import TS_HZ
from .chunk import arrival_time, creation_time, redact_chunk, sha256_of
from .publish import LiveSettings, Publisher


@dataclass
class ChunkOutcome:
    name: str
    seq: int | None
    status: str  # published | gap | late | duplicate | conflict | after-end
    record: str | None = None  # the record kind written, if any
    error: str | None = None
    redact_seconds: float = 0.0
    latency: float = 0.0  # s from taking the chunk to its place in the playlist
    duration: float = 0.0  # s of video (0 if unknown)
    frames: int = 0


def _stage(pub: Publisher, path: str, seq: int, name: str, sha: str, config: Config, detector_factory,
           program_date_time: bool, segments_runner=None) -> tuple[dict, float, dict | None, str | None]:
    """Redact and stage the chunk (or stage its failure). (seen, redaction seconds, report, error)."""
    expect = pub.playlist()[0].identity
    work = tempfile.mkdtemp(prefix="redactor-chunk-")
    seen: dict = {}
    t0 = time.perf_counter()
    try:
        try:
            red = redact_chunk(path, work, config, expect=expect, detector_factory=detector_factory, seen=seen,
                               max_seconds=pub.settings.max_chunk_seconds, segments_runner=segments_runner)
        except ModelError:
            raise  # setup, not the chunk: the stream cannot go on
        except RedactorError as e:
            info = seen.get("info")
            pub.stage_failed(seq, name, sha, getattr(e, "record", "failed"), e.one_line(),
                             round(info.duration * TS_HZ) if info is not None else None)
            return seen, time.perf_counter() - t0, None, e.one_line()
        pdt = (creation_time(path) or arrival_time(path)) if program_date_time else None
        pub.stage_ok(seq, name, sha, red, pdt)
        return seen, time.perf_counter() - t0, red.report, None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def process_chunk(pub: Publisher, path: str, seq: int, name: str, config: Config, detector_factory=None,
                  sha: str | None = None, segments_runner=None) -> ChunkOutcome:
    """Redact chunk ``seq`` (``name``: its record name) and publish it in its place. A chunk that cannot be
    redacted becomes a gap; one whose place was passed (declared a gap, or the stream ended) is late and
    nothing of it is published. ``segments_runner``: see ``redact_file`` (default: the local process pool)."""
    t0 = time.perf_counter()
    sha = sha or sha256_of(path)
    seen, redact_s, report, error = _stage(pub, path, seq, name, sha, config, detector_factory,
                                           pub.settings.program_date_time, segments_runner)
    entry = pub.publish(seq)
    info = seen.get("info")
    out = ChunkOutcome(name=name, seq=seq, status="published", error=error, redact_seconds=redact_s,
                       latency=time.perf_counter() - t0, duration=info.duration if info else 0.0,
                       frames=info.frame_count if info else 0)
    if entry is None or entry.sha256 != sha:
        pub.unstage(seq)
        out.status, out.record = "late", "late"
        why = "the stream ended before it" if entry is None else f"its place was taken ({entry.reason or 'other'})"
        pub.record(name, "late", {"sequence": seq, "error": f"finished after {why}; not published"})
    elif entry.status == "gap":
        out.status, out.record = "gap", entry.reason
    elif report is not None:
        pub.record(name, "report", {"sequence": seq, "report": report})
    return out


# ------------------------------------------------------------------------------------------- the local stream
@dataclass
class LocalStream:
    """What ``redactor live`` took so far: chunk names (sequence order) and content hashes."""

    pub: Publisher
    config: Config
    detector_factory: object = None
    on_chunk: object = None  # callback(ChunkOutcome)
    taken: dict = field(default_factory=dict)  # name -> sha256
    by_hash: dict = field(default_factory=dict)  # sha256 -> name
    outcomes: list = field(default_factory=list)

    def _done(self, out: ChunkOutcome) -> ChunkOutcome:
        self.outcomes.append(out)
        if self.on_chunk:
            self.on_chunk(out)
        return out

    def refuse(self, path: str, name: str, kind: str, error: str) -> ChunkOutcome:
        self.pub.record(name, kind, {"error": error, "gap": False})
        return self._done(ChunkOutcome(name=name, seq=None, status=kind, record=kind, error=error))

    def take(self, path: str, name: str) -> ChunkOutcome:
        """A new chunk file: processed once per content; a name already taken with other content is a
        conflict (the published chunk stays)."""
        sha = sha256_of(path)
        if name in self.taken:
            if self.taken[name] == sha:
                return self._done(ChunkOutcome(name=name, seq=None, status="duplicate"))
            return self.refuse(path, name, "conflict", f"{name} was taken with other content (sha256 "
                                                       f"{self.taken[name][:12]}..., now {sha[:12]}...)")
        if sha in self.by_hash:
            return self.refuse(path, name, "duplicate", f"the same content as {self.by_hash[sha]}, "
                                                        f"processed once")
        seq = self.pub.settings.first_seq + len(self.taken)
        self.taken[name], self.by_hash[sha] = sha, name
        return self._done(process_chunk(self.pub, path, seq, name, self.config, self.detector_factory, sha))



def run_directory(stream: LocalStream, source: str, idle: float | None = None, settle: float = 1.0,
                  poll: float = 0.25) -> None:
    """Take the chunks of directory ``source`` until ``END`` or ``idle``, then end the playlist."""
    from pathlib import Path

    from .source import watch_directory
    try:
        for event, path in watch_directory(source, idle=idle, settle=settle, poll=poll):
            name = Path(path).name
            if event in ("chunk", "again"):
                stream.take(path, name)
            elif event == "late":
                stream.refuse(path, name, "late", "its name sorts before a chunk already published; not published")
            else:
                stream.refuse(path, name, "after-end", "written after END; not published")
        stream.pub.end()
    finally:
        clean_up(stream)


def run_stream(stream: LocalStream, url: str, chunk_seconds: float = 4.0, native_rate: bool = True) -> None:
    """Cut ``url`` into chunks as it is read (a thread) and take each one as it completes."""
    import os
    from pathlib import Path

    from .source import background, cut_stream
    work = tempfile.mkdtemp(prefix="redactor-live-cut-")
    try:
        for path in background(cut_stream(url, work, chunk_seconds, native_rate)):
            stream.take(path, Path(path).name)
            os.unlink(path)
        stream.pub.end()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        clean_up(stream)


def clean_up(stream: LocalStream) -> None:
    """However the run ends (Ctrl-C, SIGTERM, an error): no staged chunk or lock file stays in OUTDIR (an
    interrupted stream's playlist has no ``EXT-X-ENDLIST``: it may go on)."""
    root = getattr(stream.pub.store, "root", None)
    if root is not None:
        shutil.rmtree(root / ".staged", ignore_errors=True)
        (root / ".lock").unlink(missing_ok=True)
