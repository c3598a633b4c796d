"""The visual report: one self-contained HTML page beside the redacted video.

    html_text = render(report, "out.mp4")     # report: the run's JSON report (report.build_report)

What the page shows, and where each part comes from:

* a **contact sheet** of thumbnails decoded with PyAV from the *redacted output* (never from the source, so
  the page holds no unredacted pixel): the frames with the most faces (at least a few frames apart) plus one
  frame from each of several equal stretches of the video (the stretch's detection record nearest its centre,
  else its centre frame) and the frame with the most of its picture redacted when that is over 20 %, each
  captioned with its time, frame index, face count and how it was covered (and the share redacted, if over 20 %);
* **large redactions**: the frames whose redacted regions cover more than 20 % (and 50 %) of the picture
  (the JSON report's ``redacted_area``), counted in the summary and listed as flagged stretches: a region
  mistaken for a face and spread by the coverage rules can wipe most of a frame;
* a **timeline** picture (Pillow): faces per second, how each second's frames were covered (found by the
  detector / only by a small-face track / held or interpolated between samples / not redacted), the segment
  borders with each segment's redaction time, and seconds in which nothing was found although the seconds
  around them had faces (worth a human look);
* the source facts, settings, removed metadata, timings per stage, frames/s, the detector and its cost.

The page is one file: images are ``data:`` URIs, there is no script, no font or style sheet is fetched, and a
Content-Security-Policy (``default-src 'none'``) tells the browser to load nothing else. Every text taken from
the report (file names, metadata keys, settings) is HTML-escaped.

Cost: demuxing the output (timestamps, keyframes) plus decoding from the keyframe before each thumbnail up to
it; frames between two thumbnails of one GOP are decoded once (``bench/report_html.py`` measures the share of a
1080p run's wall time).
"""
from __future__ import annotations

import base64
import bisect
import html
import io
import math
from fractions import Fraction

TOP_FACES = 6  # thumbnails of the frames with the most faces
SPREAD = 6  # thumbnails spread evenly over the video
THUMB_WIDTH = 320  # px, display orientation
JPEG_QUALITY = 80
GAP_SECONDS = 2  # up to this many seconds without a face between seconds with faces are flagged
TIMELINE_WIDTH = 1000  # px

# coverage classes of a frame, in the order the timeline stacks them, with their colours
COVERAGE = (
    ("detected", "detector found a face", (27, 120, 55)),
    ("tracked", "only small-face tracks", (60, 150, 200)),
    ("held", "held / interpolated between samples", (166, 217, 106)),
    ("none", "not redacted", (225, 225, 225)),
)
FLAG = (215, 48, 39)


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt_time(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


# ----------------------------------------------------------------------------------------------- the output
class OutputFrames:
    """The output video's frames in presentation order: timestamps and keyframes (demuxed, not decoded)."""

    def __init__(self, path: str):
        import av

        from .errors import InputError

        self.path = path
        try:
            with av.open(path) as c:
                vs = c.streams.video[0]
                self.time_base = Fraction(vs.time_base)
                packets = sorted((p.pts, bool(p.is_keyframe)) for p in c.demux(vs) if p.pts is not None)
        except (av.error.FFmpegError, IndexError) as e:
            raise InputError(f"cannot read the redacted output for the HTML report ({e})", path) from None
        self.pts = [p for p, _ in packets]
        self.keyframes = [i for i, (_, k) in enumerate(packets) if k]
        first = self.pts[0] if self.pts else 0
        self.times = [float((p - first) * self.time_base) for p in self.pts]

    def __len__(self) -> int:
        return len(self.pts)

    def thumbnails(self, frames: list[int], width: int, rotation: int) -> dict[int, bytes]:
        """JPEG thumbnails of the given frame indices, ``width`` px wide in display orientation. Decodes from
        the keyframe before each one; one pass through a GOP serves every thumbnail in it."""
        import av

        from .errors import InputError

        if not frames:
            return {}
        index = {p: i for i, p in enumerate(self.pts)}
        out: dict[int, bytes] = {}
        with av.open(self.path) as c:
            vs = c.streams.video[0]
            vs.thread_type = "AUTO"
            # no deblocking: ~25 % less decoding, and a thumbnail scaled down to 320 px cannot show it
            vs.codec_context.options = {"skip_loop_filter": "all"}
            sw, sh = vs.codec_context.width, vs.codec_context.height
            k = (int(round(rotation / 90.0))) % 4
            dw, dh = (sh, sw) if k % 2 else (sw, sh)  # display size
            tw = min(width, dw)
            th = max(2, int(round(dh * tw / dw / 2)) * 2)
            size = (th, tw) if k % 2 else (tw, th)  # stored orientation, before rotating
            pos, it = -1, None
            for f in sorted(set(frames)):
                key = self.keyframes[bisect.bisect_right(self.keyframes, f) - 1] if self.keyframes else 0
                if it is None or key > pos:
                    c.seek(self.pts[f], stream=vs, backward=True, any_frame=False)
                    it = c.decode(vs)
                for frame in it:
                    if frame.pts is None:
                        continue
                    pos = index.get(frame.pts, pos)
                    if frame.pts == self.pts[f]:
                        img = frame.to_image(width=size[0], height=size[1], interpolation="AREA")
                        out[f] = _jpeg(_upright(img, k))
                        break
                    if frame.pts > self.pts[f]:
                        break
                if f not in out:  # a seek without an index (MPEG-TS) can land past the frame: from the start
                    out[f] = self._from_start(self.pts[f], size, k)
                    it, pos = None, -1
                if f not in out or out[f] is None:
                    raise InputError(f"frame {f} (pts {self.pts[f]}) could not be decoded for the HTML report",
                                     self.path)
        return out

    def _from_start(self, pts: int, size, k: int) -> bytes | None:
        import av

        with av.open(self.path) as c:
            for frame in c.decode(c.streams.video[0]):
                if frame.pts == pts:
                    return _jpeg(_upright(frame.to_image(width=size[0], height=size[1], interpolation="AREA"), k))
                if frame.pts is not None and frame.pts > pts:
                    return None
        return None


def _upright(img, k: int):
    """Rotate a stored-orientation image counter-clockwise by k * 90 degrees (PyAV's rotation convention)."""
    from PIL import Image

    return img.transpose((None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                          Image.Transpose.ROTATE_270)[k]) if k else img


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ----------------------------------------------------------------------------------------------- analysis
def coverage(report: dict, n_frames: int) -> list[str]:
    """Per frame: "detected" (the detector's own boxes), "tracked" (only small-face track boxes), "held"
    (redacted by boxes held or interpolated from samples around it) or "none" (nothing redacted)."""
    cov = ["none"] * n_frames
    for a, b in report.get("redacted_ranges") or []:
        for i in range(max(0, a), min(b, n_frames)):
            cov[i] = "held"
    for d in report.get("detections") or []:
        i = d["frame"]
        if 0 <= i < n_frames and d["boxes"]:
            cov[i] = "detected" if len(d["boxes"]) > int(d.get("tracked", 0)) else "tracked"
    return cov


def per_second(report: dict, times: list[float], cov: list[str]) -> list[dict]:
    """One row per second of video: max faces on a record, frames per coverage class."""
    n_sec = max(1, math.ceil(times[-1] + 1e-9)) if times else 0
    rows = [{"second": s, "faces": 0, "frames": 0, **{c: 0 for c, _, _ in COVERAGE}} for s in range(n_sec)]
    for i, t in enumerate(times):
        r = rows[min(int(t), n_sec - 1)]
        r["frames"] += 1
        r[cov[i]] += 1
    for d in report.get("detections") or []:
        if 0 <= d["frame"] < len(times):
            r = rows[min(int(times[d["frame"]]), n_sec - 1)]
            r["faces"] = max(r["faces"], int(d.get("faces", len(d["boxes"]))))
    return rows


def flagged_gaps(rows: list[dict]) -> list[tuple[int, int]]:
    """Runs [first, last] of at most GAP_SECONDS seconds with no face found and nothing redacted, with seconds
    that had faces on both sides: a face may have been missed there (or really left and came back)."""
    has = [r["faces"] > 0 or r["frames"] > r["none"] for r in rows]
    gaps, s = [], 0
    while s < len(rows):
        if has[s]:
            s += 1
            continue
        e = s
        while e + 1 < len(rows) and not has[e + 1]:
            e += 1
        if s > 0 and e + 1 < len(rows) and e - s + 1 <= GAP_SECONDS:
            gaps.append((s, e))
        s = e + 1
    return gaps


def pick_thumbnails(report: dict, n_frames: int, keyframes: list[int] | None = None, top: int = TOP_FACES,
                    spread: int = SPREAD) -> list[dict]:
    """[{frame, kind}] sorted by frame.

    * "spread": one frame per equal stretch of the video: the stretch's first frame with a detection record
      (so its face count is measured), else the stretch's first frame;
    * "most faces": the frames with the most distinct faces, at least 1/(2*(top+spread)) of the video apart;
      among frames with equally many faces, the one that needs the fewest extra frames decoded (thumbnails are
      decoded from the keyframe before them, and one pass through a keyframe interval serves all of its
      thumbnails), then the one farthest from the thumbnails already picked, then the earliest.
    """
    records = {d["frame"]: d for d in report.get("detections") or [] if 0 <= d["frame"] < n_frames}
    faces = {f: int(d.get("faces", len(d["boxes"]))) for f, d in records.items()}
    keys = sorted(set(keyframes or [0]) | {0})
    chosen: dict[int, str] = {}
    rec_frames = sorted(records)
    for k in range(spread):
        lo, hi = k * n_frames // spread, (k + 1) * n_frames // spread
        if lo >= hi:
            continue
        i = bisect.bisect_left(rec_frames, lo)
        chosen[rec_frames[i] if i < len(rec_frames) and rec_frames[i] < hi else lo] = "spread"
    reach: dict[int, int] = {}  # keyframe -> last chosen frame of its interval

    def gop(f: int) -> int:
        return keys[bisect.bisect_right(keys, f) - 1]

    for f in chosen:
        reach[gop(f)] = max(reach.get(gop(f), -1), f)

    def extra(f: int) -> int:
        g = gop(f)
        return max(0, f - reach[g]) if g in reach else f - g + 1

    sep = max(1, n_frames // (2 * (top + spread)))
    taken: list[int] = []
    levels = sorted({v for v in faces.values() if v > 0}, reverse=True)
    for level in levels:
        cands = [f for f in rec_frames if faces[f] == level]
        while len(taken) < top:
            ok = [f for f in cands if all(abs(f - g) >= sep for g in taken)]
            if not ok:
                break
            shown = list(chosen) + taken
            f = min(ok, key=lambda f: (extra(f), -min(abs(f - g) for g in shown) if shown else 0, f))
            taken.append(f)
            reach[gop(f)] = max(reach.get(gop(f), -1), f)
        if len(taken) >= top:
            break
    for f in taken:
        chosen[f] = "most faces + spread" if chosen.get(f) == "spread" else "most faces"
    large, _ = large_redactions(report)
    if large:  # the frame with the most of its picture redacted (the earliest of equals)
        f = min(large, key=lambda f: (-large[f], f))
        if 0 <= f < n_frames:
            chosen[f] = f"{chosen[f]} + most redacted" if f in chosen else "most redacted"
    return [{"frame": f, "kind": chosen[f]} for f in sorted(chosen)]


# ----------------------------------------------------------------------------------------------- timeline
def timeline_image(rows: list[dict], duration: float, segments: list[dict], gaps: list[tuple[int, int]]):
    """The timeline picture (Pillow): faces per second, coverage per second, segment borders with their
    redaction time, flagged seconds."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    left, right, top = 44, 12, 8
    bars_h, cov_h, gap_v = 90, 26, 6
    seg_h, axis_h = 18, 20
    W = TIMELINE_WIDTH
    H = top + bars_h + gap_v + cov_h + seg_h + axis_h
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    pw = W - left - right
    span = max(duration, len(rows), 1e-9)

    def x(t: float) -> float:
        return left + pw * t / span

    y_bars, y_cov = top, top + bars_h + gap_v
    y_seg = y_cov + cov_h
    fmax = max([r["faces"] for r in rows] + [1])
    d.text((2, y_bars), str(fmax), fill="black", font=font)
    d.text((2, y_bars + bars_h - 12), "0", fill="black", font=font)
    d.text((2, y_bars + bars_h // 2 - 6), "faces", fill="black", font=font)
    d.text((2, y_cov + cov_h // 2 - 6), "cover", fill="black", font=font)
    d.line([(left, y_bars + bars_h), (W - right, y_bars + bars_h)], fill=(120, 120, 120))
    for first, last in gaps:
        d.rectangle([x(first), y_bars, max(x(last + 1) - 1, x(first) + 2), y_cov + cov_h], fill=(253, 219, 199))
    for r in rows:
        x0, x1 = x(r["second"]), max(x(r["second"] + 1) - 1, x(r["second"]) + 1)
        if r["faces"]:
            d.rectangle([x0, y_bars + bars_h - bars_h * r["faces"] / fmax, x1, y_bars + bars_h - 1],
                        fill=(70, 70, 70))
        y = float(y_cov)
        for name, _, colour in COVERAGE:
            if r[name] and r["frames"]:
                h = cov_h * r[name] / r["frames"]
                d.rectangle([x0, y, x1, max(y + h - 1, y)], fill=colour)
                y += h
    for first, last in gaps:
        cx = (x(first) + x(last + 1)) / 2
        d.polygon([(cx - 5, y_bars), (cx + 5, y_bars), (cx, y_bars + 8)], fill=FLAG)
    for s in segments:
        xs = x(s["start_time"])
        d.line([(xs, y_bars), (xs, y_seg + seg_h - 2)], fill=(0, 0, 0), width=1)
        label = f"#{s['index']} {s['redact_seconds']:.1f}s" if s.get("redact_seconds") is not None \
            else f"#{s['index']}"
        room = x(s["end_time"]) - xs
        if font.getlength(label) + 4 <= room:
            d.text((xs + 3, y_seg + 3), label, fill="black", font=font)
    step = _tick_step(span)
    t = 0.0
    while t <= span + 1e-9:
        xt = x(t)
        d.line([(xt, y_seg + seg_h), (xt, y_seg + seg_h + 4)], fill="black")
        label = fmt_time(t).rsplit(".", 1)[0]
        d.text((min(max(xt - font.getlength(label) / 2, 0), W - font.getlength(label)), y_seg + seg_h + 5),
               label, fill="black", font=font)
        t += step
    return img


def _tick_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if span / step <= 10:
            return float(step)
    return float(math.ceil(span / 10 / 3600) * 3600)


# ----------------------------------------------------------------------------------------------- large redactions
def large_redactions(report: dict) -> tuple[dict[int, float], list[int]]:
    """({frame: percent of the picture redacted} for the frames above the report's lowest threshold, the
    thresholds) from the report's ``redacted_area`` (empty for a report without it)."""
    area = report.get("redacted_area") or {}
    return {int(f): float(v) for f, v in area.get("large_frames") or []}, list(area.get("thresholds_pct") or [])


def large_redaction_summary(report: dict) -> str:
    """The summary's words on largely redacted frames ("" when the report does not measure them)."""
    area = report.get("redacted_area")
    if not area:
        return ""
    lo, hi = area["thresholds_pct"][0], area["thresholds_pct"][-1]
    n_lo, n_hi = area[f"frames_over_{lo}_pct"], area[f"frames_over_{hi}_pct"]
    text = esc(f"{n_lo} frame(s) more than {lo} % redacted ({n_hi} more than {hi} %)")
    return f"<span class=flag>{text}</span>; " if n_lo else f"{text}; "


def large_redaction_section(report: dict, times: list[float]) -> list[str]:
    """The page's section on frames whose redacted regions cover a large share of the picture."""
    area = report.get("redacted_area")
    out = ["<h2>Large redactions</h2>"]
    if not area:
        return out + ["<p class=muted>This report does not measure how much of each frame is redacted.</p>"]
    large, thresholds = large_redactions(report)
    lo = thresholds[0]
    if not large:
        return out + [f"<p>No frame more than {esc(lo)} % redacted (at most {esc(_value(area['max_pct']))} %, "
                      f"{esc(_value(area['mean_pct']))} % on average).</p>"]
    runs = []
    for a, b in area[f"ranges_over_{lo}_pct"]:
        peak = max(large.get(f, 0.0) for f in range(a, b))
        when = f"{fmt_time(times[a])}–{fmt_time(times[b] if b < len(times) else times[-1])}" if times else ""
        runs.append(f"{when} (frame{'s' if b - a > 1 else ''} {a}{f'–{b - 1}' if b - a > 1 else ''}, "
                    f"up to {peak:g} %)")
    hi = thresholds[-1]
    out.append(f"<p class=flag>Worth a look: {esc(len(large))} frame(s) with more than {esc(lo)} % of the "
               f"picture redacted ({esc(area[f'frames_over_{hi}_pct'])} more than {esc(hi)} %): "
               + esc("; ".join(runs)) + ".</p>")
    out.append("<p>Faces rarely fill that much of a picture: a region mistaken for a face and carried, stretched "
               "or held by the coverage rules can wipe most of a frame. The contact sheet shows the most redacted "
               "frame.</p>")
    return out


# ----------------------------------------------------------------------------------------------- the page
CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sheet{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0;width:%dpx}figure img{width:100%%;display:block}
figcaption{font-size:12px;color:#444}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px}
.flag{color:#d73027;font-weight:600}.muted{color:#777}code{font-size:12px}
""" % THUMB_WIDTH


def _table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) if v else "–"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) or "–"
    return "–" if v is None else str(v)


def _figure(pick: dict, record: dict | None, cov: list[str], times: list[float], jpeg: bytes,
            redacted_pct: float | None) -> str:
    """One contact-sheet thumbnail with its caption (the share of the picture redacted when it is large)."""
    f = pick["frame"]
    faces = int(record.get("faces", len(record["boxes"]))) if record else 0
    what = {"detected": "found by the detector", "tracked": "found by a small-face track",
            "held": "covered by held/interpolated boxes", "none": "nothing redacted"}[cov[f]]
    caption = f"{fmt_time(times[f])} · frame {f} · {faces} face{'s' if faces != 1 else ''} · {what} · {pick['kind']}"
    big = note = ""
    if redacted_pct is not None:
        big = f' data-redacted-pct="{esc(f"{redacted_pct:g}")}"'
        note = f' <span class=flag>· {esc(f"{redacted_pct:g}")} % of the picture redacted</span>'
    return (f'<figure><img src="{data_uri("image/jpeg", jpeg)}" alt="frame {esc(f)}" data-frame="{esc(f)}" '
            f'data-faces="{esc(faces)}" data-time="{times[f]:.6f}" data-kind="{esc(pick["kind"])}"{big}>'
            f"<figcaption>{esc(caption)}{note}</figcaption></figure>")


def render(report: dict, output: str, *, title: str | None = None) -> str:
    """The HTML page for ``report`` (the run's JSON report) and its redacted ``output`` video."""
    from .errors import RedactorError

    frames = OutputFrames(output)
    n = len(frames)
    counts = report.get("counts") or {}
    if n != counts.get("frames"):
        raise RedactorError(f"the output has {n} frames, its report {counts.get('frames')}: not the same run",
                            output)
    src = report.get("source") or {}
    rotation = int(src.get("rotation") or 0)
    cov = coverage(report, n)
    rows = per_second(report, frames.times, cov)
    gaps = flagged_gaps(rows)
    duration = float(src.get("duration") or (frames.times[-1] if frames.times else 0.0))
    records = {d["frame"]: d for d in report.get("detections") or []}
    picks = pick_thumbnails(report, n, frames.keyframes)
    thumbs = frames.thumbnails([p["frame"] for p in picks], THUMB_WIDTH, rotation)
    large, _ = large_redactions(report)
    segments = _segment_times(report, frames.times, duration)
    tl = timeline_image(rows, duration, segments, gaps)

    name = title or str(src.get("path") or output).rsplit("/", 1)[-1]
    p = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
         "style-src 'unsafe-inline'\">", '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>Redaction report: {esc(name)}</title><style>{CSS}</style></head><body>",
         f"<h1>Redaction report: {esc(name)}</h1>",
         f"<p class=muted>redactor {esc(report.get('redactor_version', '?'))} · created "
         f"{esc(report.get('created', '?'))} · output <code>{esc((report.get('output') or {}).get('output', output))}"
         "</code></p>",
         f"<p>{esc(n)} frames ({esc(fmt_time(duration))}), {esc(counts.get('redacted_frames', 0))} redacted; "
         f"faces found on {esc(counts.get('frames_with_faces', 0))} of {esc(counts.get('detected_frames', 0))} "
         f"detection frames; {esc(report.get('frames_per_second'))} frames/s; "
         f"{large_redaction_summary(report)}{esc(len(gaps))} stretch(es) flagged for a look.</p>"]

    p.append("<h2>Contact sheet (from the redacted output)</h2><div class=sheet>")
    for pick in picks:
        p.append(_figure(pick, records.get(pick["frame"]), cov, frames.times, thumbs[pick["frame"]],
                         large.get(pick["frame"])))
    p.append("</div>")
    p.extend(_timeline_section(tl, cov, gaps))
    p.extend(large_redaction_section(report, frames.times))
    p.extend(_run_tables(report, segments))
    p.append("</body></html>\n")
    return "\n".join(p)


def _segment_times(report: dict, times: list[float], duration: float) -> list[dict]:
    """The plan's segments that start within the output, with their start and end times."""
    n = len(times)
    segments = []
    for s in (report.get("plan") or {}).get("segments") or []:
        a, b = int(s["start_frame"]), int(s["end_frame"])
        if 0 <= a < n:
            segments.append({**s, "start_time": times[a],
                             "end_time": times[b] if b < n else max(duration, times[-1])})
    return segments


def _timeline_section(tl, cov: list, gaps: list) -> list[str]:
    """The timeline image, its legend (with each coverage's frame count) and the stretches flagged for a look."""
    cover_n = {c: cov.count(c) for c, _, _ in COVERAGE}
    p = ["<h2>Timeline</h2>"]
    p.append(f'<img src="{data_uri("image/png", _png(tl))}" alt="timeline" data-role="timeline" '
             f'width="{tl.width}" height="{tl.height}">')
    legend = "".join(f'<span class=sw style="background:rgb{c}"></span>{esc(label)} ({esc(cover_n[k])} frames)'
                     for k, label, c in COVERAGE)
    p.append(f"<p>Top: most distinct faces on one frame of each second. Band: how each second's frames were "
             f"covered: {legend}. Vertical lines: segment borders, labelled with the segment's redaction time."
             f"<span class=sw style=\"background:rgb{FLAG}\"></span>a second with no face although the seconds "
             f"around it had faces.</p>")
    if gaps:
        p.append("<p class=flag>Worth a look: " + "; ".join(
            esc(f"{fmt_time(a)}–{fmt_time(b + 1)}") for a, b in gaps) + "</p>")
    else:
        p.append("<p>No second without a face between seconds with faces.</p>")
    return p


def _run_tables(report: dict, segments: list[dict]) -> list[str]:
    """The segments, the source, the removed metadata, the settings, the timings and the detector."""
    src = report.get("source") or {}
    p = ["<h2>Segments</h2>"]
    p.append(_table([(s["index"], f"{s['start_frame']}–{s['end_frame'] - 1}",
                      f"{fmt_time(s['start_time'])}–{fmt_time(s['end_time'])}", _value(s.get("redact_seconds")))
                     for s in segments], ("#", "frames", "time", "redaction wall time (s)")))

    p.append("<h2>Source</h2>")
    audio = [f"{a.get('codec')} {a.get('sample_rate') or ''} Hz {a.get('channels') or ''} ch"
             for a in src.get("audio") or []]
    p.append(_table([("file", src.get("path")), ("container", src.get("container")),
                     ("size", f"{src.get('size_bytes', 0):,} bytes"), ("video", f"{src.get('codec')} "
                     f"{src.get('profile') or ''}, {src.get('width')}×{src.get('height')}, {src.get('pix_fmt')}, "
                     f"{src.get('bit_depth')}-bit"), ("frames", src.get("frame_count")),
                     ("duration", f"{_value(src.get('duration'))} s"), ("frame rate",
                     f"{_value(src.get('fps'))} fps" + (" (variable)" if src.get("variable_frame_rate") else "")),
                     ("rotation", f"{int(src.get('rotation') or 0)}°"), ("audio", _value(audio)),
                     ("other streams (dropped)", src.get("other_streams", 0))]))
    p.append("<h2>Removed metadata</h2>")
    removed = report.get("removed_metadata") or []
    p.append("<p>" + (esc(", ".join(removed)) if removed else "none") + "</p>")

    p.append("<h2>Settings</h2>")
    p.append(_table([(k, _value(v)) for k, v in sorted((report.get("settings") or {}).items())]))
    p.extend(_timing_tables(report))
    return p


def _timing_tables(report: dict) -> list[str]:
    """The stages' wall times, the workers' summed stage times and the detector (with its share of them)."""
    timings = dict(report.get("timings") or {})
    stage = timings.pop("worker_stage_seconds", {}) or {}
    det = dict(report.get("detector") or {})
    detect_s = sum(v for k, v in stage.items() if k.startswith(("detect", "track")))
    work_s = sum(stage.values())
    p = ["<h2>Timings</h2>"]
    p.append(_table([(k, f"{v:.3f} s" if isinstance(v, (int, float)) else _value(v)) for k, v in timings.items()]
                    + [("frames/s", _value(report.get("frames_per_second")))], ("stage (wall)", "time")))
    if stage:
        p.append(_table([(k, f"{v:.3f} s", f"{100 * v / work_s:.1f} %" if work_s else "–")
                         for k, v in sorted(stage.items(), key=lambda kv: -kv[1])],
                        ("worker stage (summed over workers)", "time", "share")))

    p.append("<h2>Detector</h2>")
    drows = [("name", det.pop("name", None))] + [(k, _value(v)) for k, v in sorted(det.items())]
    if stage:
        drows.append(("detection + tracking time", f"{detect_s:.3f} s of worker time"
                      + (f" ({100 * detect_s / work_s:.1f} %)" if work_s else "")))
    p.append(_table(drows))
    return p
