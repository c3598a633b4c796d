"""The stream's report: one self-contained HTML page, ``report.html`` in the stream's root, written when the
stream ends (``Publisher.end``), locally and in AWS alike.

It is made from what the stream's root holds: the playlist (each chunk's place, status and segments: its
``#REDACTOR-CHUNK`` lines) and the per-chunk records (``records/<chunk>.report.json``, the engine's JSON report
of a published chunk; ``records/<chunk>.<kind>.json``, why a chunk is a gap). Per chunk: its place on the
stream's timeline, its status, its frames, faces, share of the picture redacted (mean, max, frames over 20 %
and 50 %) and redaction time; a gap's reason and error. A timeline bar shows published chunks and gaps in
proportion. Chunks that never took a place (a duplicate, a conflict, one after the end) have their records
only. The page holds no picture of the video (no thumbnail: each chunk's JSON report is beside it), loads
nothing (a Content-Security-Policy of ``default-src 'none'``) and escapes every text it takes from the records.
"""
from __future__ import annotations

import json

from ..hls import PLAYLIST, TS_HZ, ChunkEntry, Playlist
from ..report_html import CSS, _table, esc, fmt_time
from .store import Store

STREAM_REPORT = "report.html"
RECORDS = "records"


def _record(store: Store, chunk: str, kind: str) -> dict | None:
    data = store.get(f"{RECORDS}/{chunk}.{kind}.json")
    return json.loads(data) if data else None


def chunk_row(entry: ChunkEntry, start: int, record: dict | None) -> dict:
    """One chunk's line of the report: ``record`` is its engine report record (published) or its gap record."""
    row = {"seq": entry.seq, "name": entry.name, "status": entry.status, "start": start / TS_HZ,
           "duration": entry.duration / TS_HZ, "segments": len(entry.durations), "reason": entry.reason}
    if entry.status == "gap":
        row["error"] = (record or {}).get("error")
        return row
    report = (record or {}).get("report") or {}
    counts, area = report.get("counts") or {}, report.get("redacted_area") or {}
    row.update(frames=counts.get("frames"), faces=counts.get("faces"), mean_pct=area.get("mean_pct"),
               max_pct=area.get("max_pct"), over_20=counts.get("frames_over_20_pct_redacted"),
               over_50=counts.get("frames_over_50_pct_redacted"),
               redact_s=(report.get("timings") or {}).get("total"))
    return row


def stream_rows(store: Store, playlist: Playlist) -> list[dict]:
    """The report's lines, in playlist order, each chunk's start on the stream's timeline (s from its start)."""
    rows, t = [], 0
    for c in playlist.chunks:
        rows.append(chunk_row(c, t, _record(store, c.name, "report" if c.status == "ok" else c.reason or "failed")))
        t += c.duration
    return rows


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    frames = sum(r.get("frames") or 0 for r in ok)
    weighted = sum((r.get("mean_pct") or 0.0) * (r.get("frames") or 0) for r in ok)
    reasons: dict[str, int] = {}
    for r in rows:
        if r["status"] == "gap":
            reasons[r["reason"] or "failed"] = reasons.get(r["reason"] or "failed", 0) + 1
    return {"chunks": len(rows), "published": len(ok), "gaps": len(rows) - len(ok), "gap_reasons": reasons,
            "seconds": sum(r["duration"] for r in rows), "gap_seconds": sum(r["duration"] for r in rows
                                                                            if r["status"] == "gap"),
            "frames": frames, "faces": sum(r.get("faces") or 0 for r in ok),
            "redacted_mean_pct": round(weighted / frames, 2) if frames else None,
            "frames_over_20_pct": sum(r.get("over_20") or 0 for r in ok),
            "frames_over_50_pct": sum(r.get("over_50") or 0 for r in ok)}


def _bar(rows: list[dict], total: float) -> str:
    """Published chunks (green) and gaps (red) in proportion to their durations."""
    parts = []
    for r in rows:
        colour = "#1b7837" if r["status"] == "ok" else "#d73027"
        width = 100.0 * r["duration"] / total if total else 0.0
        parts.append(f'<span title="chunk {esc(r["seq"])}: {esc(r["status"])}" style="display:inline-block;'
                     f'height:14px;width:{width:.3f}%;background:{colour}"></span>')
    return '<div style="width:100%;border:1px solid #ccc;line-height:0">' + "".join(parts) + "</div>"


def _cells(r: dict) -> list:
    def pct(v):
        return "" if v is None else f"{v:.2f} %"

    note = r.get("error") or ""
    flag = (r.get("over_20") or 0) > 0
    return [r["seq"], r["name"], fmt_time(r["start"]), f"{r['duration']:.3f} s", r["status"] if r["status"] == "ok"
            else f"gap ({r['reason'] or 'failed'})", r["segments"], r.get("frames", ""), r.get("faces", ""),
            pct(r.get("mean_pct")), pct(r.get("max_pct")), (f"{r.get('over_20')} / {r.get('over_50')}"
                                                           + (" (look)" if flag else "")) if r["status"] == "ok"
            else "", "" if r.get("redact_s") is None else f"{r['redact_s']:.2f} s", note]


def render_stream(name: str, playlist: Playlist, rows: list[dict]) -> str:
    """The page for stream ``name``: its ``playlist`` and the lines ``stream_rows`` made from it."""
    s = summary(rows)
    gaps = ", ".join(f"{k} {v}" for k, v in sorted(s["gap_reasons"].items())) or "none"
    facts = [("chunks", s["chunks"]), ("published", s["published"]), ("gaps", f"{s['gaps']} ({gaps})"),
             ("duration", f"{s['seconds']:.3f} s, of which gaps {s['gap_seconds']:.3f} s"),
             ("frames published", s["frames"]), ("faces found", s["faces"]),
             ("picture redacted, mean per frame", "" if s["redacted_mean_pct"] is None
              else f"{s['redacted_mean_pct']:.2f} %"),
             ("frames over 20 % / 50 % redacted", f"{s['frames_over_20_pct']} / {s['frames_over_50_pct']}"),
             ("stream", "ended (EXT-X-ENDLIST)" if playlist.ended else "not ended")]
    header = ["#", "chunk", "starts", "duration", "status", "segments", "frames", "faces", "redacted mean",
              "redacted max", "frames > 20 % / 50 %", "redaction", "why a gap"]
    p = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
         f"<title>Live stream report: {esc(name)}</title><style>{CSS}</style></head><body>",
         f"<h1>Live stream report: {esc(name)}</h1>",
         f"<p class=muted>playlist <code>{esc(PLAYLIST)}</code>; each chunk's JSON report is "
         f"<code>{RECORDS}/&lt;chunk&gt;.report.json</code></p>",
         "<h2>Summary</h2>", _table(facts), "<h2>Timeline</h2>", _bar(rows, s["seconds"]),
         "<p class=muted>green: published chunks; red: gaps (nothing of a gap's chunk is published)</p>",
         "<h2>Chunks</h2>", _table([_cells(r) for r in rows], header), "</body></html>"]
    return "\n".join(p) + "\n"


def write_stream_report(store: Store, playlist: Playlist, name: str) -> None:
    """``report.html`` in the stream's root, from its playlist and records."""
    store.put_bytes(STREAM_REPORT, render_stream(name, playlist, stream_rows(store, playlist)).encode())
