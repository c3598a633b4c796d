"""Where ``redactor live`` takes its chunks from: a directory receiving chunk files, or a file or stream URL
read at its native rate and cut at its keyframes into chunk files (packets copied, nothing re-encoded)."""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from pathlib import Path

END = "END"
CHUNK_SUFFIXES = {".mp4", ".m4v", ".mov", ".ts", ".mts", ".m2ts", ".mkv", ".webm", ".avi"}


def natural_key(name: str) -> list:
    """``2.mp4`` before ``10.mp4``: digit runs compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _is_chunk(p: Path) -> bool:
    return (p.suffix.lower() in CHUNK_SUFFIXES and not p.name.startswith(".") and ".partial" not in p.name
            and p.is_file())


def watch_directory(root: str, idle: float | None = None, settle: float = 1.0, poll: float = 0.25,
                    clock=time.monotonic, sleep=time.sleep):
    """Yield ``(event, path)`` for the chunk files of ``root`` in natural name order, each once it is
    complete (unchanged for ``settle`` s): ``chunk`` (in order), ``late`` (its name sorts before one already
    taken), ``again`` (a taken name rewritten: the caller compares contents), ``after-end`` (written after
    ``END``). Ends after ``END`` once every chunk written before it was yielded, or after ``idle`` s in which
    no chunk was yielded (time spent by the caller between yields does not count)."""
    root_p = Path(root)
    taken: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) when taken
    last_key = None
    quiet_since = clock()
    while True:
        end = root_p / END
        end_mtime = end.stat().st_mtime_ns if end.is_file() else None
        pending = False
        for p in sorted((p for p in root_p.iterdir() if _is_chunk(p)), key=lambda p: natural_key(p.name)):
            st = p.stat()
            stamp = (st.st_size, st.st_mtime_ns)
            if taken.get(p.name) == stamp:
                continue
            if time.time() - st.st_mtime < settle:
                pending = True
                if p.name not in taken:
                    break  # natural order: nothing after a chunk still being written
                continue
            if end_mtime is not None and st.st_mtime_ns > end_mtime:
                event = "after-end"
            elif p.name in taken:
                event = "again"
            elif last_key is not None and natural_key(p.name) < last_key:
                event = "late"
            else:
                event, last_key = "chunk", natural_key(p.name)
            taken[p.name] = stamp
            yield event, str(p)
            quiet_since = clock()
        if end_mtime is not None and not pending:
            return
        if idle is not None and clock() - quiet_since >= idle:
            return
        sleep(poll)


def _chunk_format(vs, audio) -> tuple[str, str]:
    """(muxer, suffix) for copied chunks: MPEG-TS when it carries the codecs, else Matroska."""
    from ..remux import TS_AUDIO
    if vs.codec_context.name in ("h264", "hevc") and all(a.codec_context.name in TS_AUDIO for a in audio):
        return "mpegts", ".ts"
    return "matroska", ".mkv"


def cut_stream(url: str, out_dir: str, chunk_seconds: float = 4.0, native_rate: bool = True):
    """Yield chunk files of ``url`` (``out_dir/chunk-NNNNNN.ts``), each starting at a keyframe and about
    ``chunk_seconds`` long, as soon as it is complete; with ``native_rate``, packets are taken no faster than
    their timestamps (a file read as a live source would deliver it)."""
    import av

    from ..errors import InputError
    try:
        src = av.open(url)
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"cannot open it as a video file or stream ({e})", url) from None
    if not src.streams.video:
        src.close()
        raise InputError("it has no video stream", url)
    with src:
        vs = src.streams.video[0]
        audio = list(src.streams.audio)
        fmt, suffix = _chunk_format(vs, audio)
        out = outs = None
        start = wall0 = t0 = None
        n, early = 0, []  # audio read before the first keyframe goes into the first chunk
        for pkt in src.demux([vs] + audio):
            if pkt.size == 0 and pkt.pts is None:
                continue
            t = float(pkt.pts * pkt.time_base) if pkt.pts is not None else None
            if native_rate and t is not None:
                if wall0 is None:
                    wall0, t0 = time.monotonic(), t
                ahead = (t - t0) - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)
            if pkt.stream.index == vs.index and pkt.is_keyframe and t is not None and \
                    (out is None or t - start >= chunk_seconds):
                if out is not None:
                    out.close()
                    yield path
                    n += 1
                path = os.path.join(out_dir, f"chunk-{n:06d}{suffix}")
                out = av.open(path, "w", format=fmt)
                outs = {s.index: out.add_stream_from_template(s) for s in [vs] + audio}
                start = t
                for a in early:
                    a.stream = outs[a.stream.index]
                    out.mux(a)
                early = []
            if out is None:
                if pkt.stream.index != vs.index:
                    early.append(pkt)
                continue  # video before the first keyframe: not decodable on its own
            pkt.stream = outs[pkt.stream.index]
            out.mux(pkt)
        if out is not None:
            out.close()
            yield path


def background(gen, depth: int = 64):
    """Run generator ``gen`` in a thread (reading at the native rate goes on while a chunk is redacted); yield
    what it yields, re-raising its error."""
    q: queue.Queue = queue.Queue(depth)
    done = object()

    def run():
        try:
            for item in gen:
                q.put((item, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((None, e))
        q.put((done, None))

    threading.Thread(target=run, daemon=True, name="live-source").start()
    while True:
        item, err = q.get()
        if err is not None:
            raise err
        if item is done:
            return
        yield item
