"""Publishing a stream's chunks in order, by any number of writers at once (docs/live.md, "Publishing in
order"). A chunk is first staged (``.staged/<seq>.ts`` + ``.staged/<seq>.json``, the JSON written last: it
says the chunk is ready, or that it failed); ``publish(seq)`` then appends, by compare-and-swap of the
playlist, every staged chunk that is next in line until ``seq`` has its place: its segments, or a gap.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace

import av

from ..hls import PLAYLIST, ChunkEntry, Playlist, gap_durations, write_segments
from .report import RECORDS, STREAM_REPORT, write_stream_report
from .store import Store

STAGED = ".staged"
CLAIMS = ".claims"


@dataclass(frozen=True)
class LiveSettings:
    gap_wait: float = 30.0  # s a writer waits for an earlier chunk before declaring it a gap
    poll: float = 0.5  # s between looks at the playlist while waiting
    keep_metadata: bool = False
    program_date_time: bool = False  # EXT-X-PROGRAM-DATE-TIME per chunk (the recorded time: metadata)
    first_seq: int = 0  # the stream's first chunk number
    # s to wait for an earlier chunk that has been claimed (it arrived and is being redacted: ``.claims/``,
    # AWS); 0 = the gap wait
    busy_wait: float = 0.0
    # s of video: a longer chunk is refused before any frame is redacted (record ``too-long``, a gap); 0 = no
    # limit. In AWS, what the live function can finish within its timeout (docs/live.md)
    max_chunk_seconds: float = 0.0


def staged_name(seq: int, ext: str) -> str:
    return f"{STAGED}/{seq:06d}.{ext}"


def claim_name(seq: int) -> str:
    return f"{CLAIMS}/{seq:06d}.json"


def record_name(chunk: str, kind: str) -> str:
    return f"{RECORDS}/{chunk}.{kind}.json"


class Publisher:
    def __init__(self, store: Store, settings: LiveSettings | None = None, clock=time.monotonic, sleep=time.sleep):
        self.store, self.settings = store, settings or LiveSettings()
        self.clock, self.sleep = clock, sleep

    # ----------------------------------------------------------------------------------------- records, staging
    def record(self, chunk: str, kind: str, data: dict) -> None:
        self.store.put_bytes(record_name(chunk, kind), json.dumps({"chunk": chunk, "kind": kind, **data},
                                                                  indent=1, default=str).encode())

    def stage_ok(self, seq: int, name: str, sha256: str, redacted, program_date_time: str | None = None) -> None:
        self.store.put_file(staged_name(seq, "ts"), redacted.path)
        meta = {"seq": seq, "name": name, "sha256": sha256, "status": "ok", "first": redacted.first,
                "end": redacted.end, "identity": redacted.identity, "program_date_time": program_date_time}
        self.store.put_bytes(staged_name(seq, "json"), json.dumps(meta).encode())

    def stage_failed(self, seq: int, name: str, sha256: str | None, kind: str, error: str,
                     duration: int | None) -> None:
        meta = {"seq": seq, "name": name, "sha256": sha256, "status": "gap", "reason": kind, "error": error,
                "duration": duration}
        self.store.put_bytes(staged_name(seq, "json"), json.dumps(meta).encode())

    def staged(self, seq: int) -> dict | None:
        data = self.store.get(staged_name(seq, "json"))
        return json.loads(data) if data else None

    def unstage(self, seq: int) -> None:
        self.store.delete(staged_name(seq, "ts"))
        self.store.delete(staged_name(seq, "json"))

    # -------------------------------------------------------------------------------------------- the playlist
    def playlist(self) -> tuple[Playlist, str | None]:
        data, etag = self.store.read(PLAYLIST)
        return (Playlist.parse(data.decode()) if data else Playlist(first_seq=self.settings.first_seq)), etag

    def _gap(self, seq: int, name: str, reason: str, duration: int | None, pl: Playlist,
             sha256: str | None = None) -> ChunkEntry:
        return ChunkEntry(seq=seq, name=name, status="gap", sha256=sha256, reason=reason,
                          durations=gap_durations(int(duration or pl.last_duration())))

    def _entry(self, pl: Playlist, meta: dict) -> tuple[ChunkEntry, dict | None] | None:
        """The chunk's entry (its segments written to the store) and the record to write once it is in; None
        if its staged file is gone (published by another writer)."""
        seq, name = meta["seq"], meta["name"]
        if meta["status"] != "ok":
            return (self._gap(seq, name, meta["reason"], meta.get("duration"), pl, meta.get("sha256")),
                    {"kind": meta["reason"], "error": meta.get("error"), "sequence": seq})
        duration = meta["end"] - meta["first"]
        if pl.identity is not None and meta["identity"] != pl.identity:
            error = f"the chunk ({meta['identity']}) differs from the stream ({pl.identity})"
            return (self._gap(seq, name, "mismatch", duration, pl, meta["sha256"]),
                    {"kind": "mismatch", "error": error, "sequence": seq})
        work = tempfile.mkdtemp(prefix="redactor-live-")
        try:
            src = os.path.join(work, "chunk.ts")
            if not self.store.get_file(staged_name(seq, "ts"), src):
                return None  # another writer published it meanwhile: read the playlist again
            try:
                files = write_segments(src, seq, meta["first"], meta["end"], pl.next_time - meta["first"], work,
                                       self.settings.keep_metadata)
            except (ValueError, av.error.FFmpegError) as e:  # the chunk, not the store: it becomes a gap
                return (self._gap(seq, name, "failed", duration, pl, meta["sha256"]),
                        {"kind": "failed", "error": f"segmenting: {e}", "sequence": seq})
            for f in files:
                self.store.put_file(f.name, f.path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return ChunkEntry(seq=seq, name=name, status="ok", durations=[f.duration for f in files],
                          sha256=meta["sha256"], program_date_time=meta.get("program_date_time")), None

    def _next(self, pl: Playlist, waiting: dict) -> tuple[ChunkEntry, dict | None, dict | None] | None:
        """(entry, record, identity) for the chunk next in line, or None to wait for it (up to the gap
        wait)."""
        nxt = pl.next_seq
        meta = self.staged(nxt)
        if meta is not None:
            made = self._entry(pl, meta)
            return None if made is None else (*made, meta.get("identity"))
        if waiting.get("seq") != nxt:
            waiting.update(seq=nxt, since=self.clock())
        bound = self.settings.gap_wait
        if self.settings.busy_wait > bound and self.store.get(claim_name(nxt)) is not None:
            bound = self.settings.busy_wait  # it is being redacted
        if self.clock() - waiting["since"] < bound:
            return None
        error = f"not staged within {bound:g} s while a later chunk waited"
        return (self._gap(nxt, f"{nxt:06d}", "missing", None, pl),
                {"kind": "missing", "error": error, "sequence": nxt}, None)

    def publish(self, seq: int) -> ChunkEntry | None:
        """Publish in order until chunk ``seq`` has its place; returns its entry (None if the stream ended
        before it). Re-reads and retries when another writer changed the playlist first."""
        waiting: dict = {}
        while True:
            pl, etag = self.playlist()
            done = pl.entry(seq)
            if done is not None or pl.ended or seq < pl.next_seq:
                return done
            step = self._next(pl, waiting)
            if step is None:
                self.sleep(self.settings.poll)
                continue
            entry, rec, identity = step
            new = replace(pl, chunks=list(pl.chunks))
            new.append(entry)
            if entry.status == "ok" and new.identity is None:
                new.identity = identity
            if self.store.write_if(PLAYLIST, new.render().encode(), etag):
                if rec is not None:
                    self.record(entry.name, rec.pop("kind"), {**rec, "gap": True})
                self.unstage(entry.seq)

    def end(self) -> Playlist:
        """``EXT-X-ENDLIST``: the stream has ended (idempotent); then the stream's report (``report.html``,
        ``live.report``), made again by every call until one has written it."""
        while True:
            pl, etag = self.playlist()
            if pl.ended:
                break
            pl.ended = True
            if self.store.write_if(PLAYLIST, pl.render().encode(), etag):
                break
        if self.store.get(STREAM_REPORT) is None:
            write_stream_report(self.store, pl, self.store.label)
        return pl
