"""Synthetic test media with ground truth, so tests, ``make demo`` and benchmarks need no committed videos.

``make_clip(path, ...)`` writes a clip of a textured, panning background (smooth colour noise, gradients,
random shapes and fine grain, precomputed once as one large image; each frame is a moving crop of it)
with ``faces`` real face crops (the astronaut from ``skimage.data.astronaut()``) moving on smooth paths
that stay inside the frame.  It returns the ground truth::

    {"path", "width", "height", "frames", "pts": [...], "time_base": "num/den",
     "faces": [[[x1, y1, x2, y2], ...] per frame], ...}

Boxes are the pasted face rectangles in the *stored* frame's pixel coordinates (before any rotation
metadata is applied); ``x2``/``y2`` are exclusive (``x2 - x1`` is the face width).  ``pts`` and
``time_base`` are read back from the written file (what a demuxer/decoder reports, in presentation
order), so they are exact even where the muxer rescales timestamps (Matroska stores milliseconds).

Encoder/container notes (workarounds):

* B-frames: ``bframes`` is passed as ``x264-params``/``x265-params`` ``bframes=N`` (the ``ultrafast``
  preset would otherwise force 0).  ``gop=N`` sets ``keyint=N`` with ``scenecut=0`` (keyframe every N
  frames exactly); ``keyframes_only_first=True`` sets ``keyint=infinite`` (x264) / ``keyint=-1`` (x265).
* 10-bit: this libx264 build encodes ``yuv420p10le`` (High 10) directly; no fallback needed.
* Odd dimensions: libx264/libx265 refuse odd sizes with chroma subsampling, so when width or height is
  odd and ``pix_fmt`` is 4:2:0/4:2:2 it is switched to the 4:4:4 equivalent (``yuv444p``,
  ``yuv444p10le``, ``yuvj444p``); the returned ``pix_fmt`` says what was used.
* Metadata in mp4/mov: the mov muxer only writes a fixed set of keys (``make``/``model`` are dropped), so
  when ``metadata`` is given, ``movflags=use_metadata_tags`` is set, which stores every key as an
  ``mdta`` item (``creation_time`` still goes into ``mvhd``).  mkv keeps arbitrary tags natively.
* VFR: the stream and encoder time base is 1/90000 and every frame gets an explicit pts; durations are
  random in [1/fps, 2.5/fps].
* Rotation is written as a display matrix (``VideoStream.set_display_rotation``) before the first frame.
* Opus needs mp4 or mkv (the mov muxer refuses it).

``decimate(source, path, step=3, fps=10)`` writes a low-frame-rate copy of a real clip (every 3rd frame at
10 fps: what a 10 fps camera would have recorded; bench/recall.py and tests/test_low_fps_edges.py).

``make_bad_inputs(dir)`` writes broken inputs (empty, random bytes, truncated mp4, audio-only, text).

CLI: ``python -m testmedia OUT.mp4 --width 960 --height 540 --seconds 6 --audio aac --faces 2``
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["make_clip", "edge_clip", "decimate", "make_bad_inputs", "face_image", "main"]

# Tight crop of the astronaut's face (hair to chin) in skimage.data.astronaut() (512x512 RGB).
_FACE_ROWS = (14, 194)
_FACE_COLS = (146, 308)
# a real profile: the cameraman's head in scikit-image's ``camera`` (ear to nose tip, hair to chin), facing right
_PROFILE_ROWS = (88, 208)
_PROFILE_COLS = (168, 258)

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".m4a": "mp4",
               ".webm": "webm", ".avi": "avi", ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts"}
_FMT_ALIASES = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "matroska": "matroska", "webm": "webm",
                "avi": "avi", "mpegts": "mpegts", "ts": "mpegts"}
_M2TS = (".mts", ".m2ts")  # MPEG-TS with 192-byte packets (AVCHD camcorders)
_ODD_SAFE = {"yuv420p": "yuv444p", "yuv422p": "yuv444p", "yuvj420p": "yuvj444p", "yuvj422p": "yuvj444p",
             "yuv420p10le": "yuv444p10le", "yuv422p10le": "yuv444p10le", "nv12": "yuv444p",
             "nv21": "yuv444p"}
_AUDIO_RATE = 48000


def face_image() -> np.ndarray:
    """The astronaut face crop as an RGB uint8 array (180x162)."""
    try:
        from skimage import data
    except ImportError as e:  # pragma: no cover - depends on environment
        raise ImportError("testmedia needs scikit-image for its face images: "
                          "pip install scikit-image") from e
    img = data.astronaut()
    return np.ascontiguousarray(img[_FACE_ROWS[0]:_FACE_ROWS[1], _FACE_COLS[0]:_FACE_COLS[1]])


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize (numpy only) of an HxWxC array; returns float32."""
    src = img.astype(np.float32, copy=False)
    sh, sw = src.shape[:2]

    def axis(n_out, n_in):
        pos = (np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        i0 = np.floor(pos).astype(np.intp)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (pos - i0).astype(np.float32)

    y0, y1, wy = axis(h, sh)
    x0, x1, wx = axis(w, sw)
    rows = src[y0] * (1 - wy)[:, None, None] + src[y1] * wy[:, None, None]
    return rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


LOOKS = ("frontal", "squeezed", "half", "profile", "profile-left")


def profile_image() -> np.ndarray:
    """A real profile photo: the cameraman's head in scikit-image's ``camera`` image (RGB uint8, 120x90), facing
    right: hair, ear, cheek, one eye, the nose tip at the right edge (a camera's eyepiece just touches it)."""
    from skimage import data
    img = data.camera()[_PROFILE_ROWS[0]:_PROFILE_ROWS[1], _PROFILE_COLS[0]:_PROFILE_COLS[1]]
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))


PROFILE_ASPECT = (_PROFILE_COLS[1] - _PROFILE_COLS[0]) / (_PROFILE_ROWS[1] - _PROFILE_ROWS[0])


def _look(face: np.ndarray, h: int, w: int, look: str) -> np.ndarray:
    """The face image at h x w as a head turned away would show it: ``frontal`` as is, ``squeezed`` to 60 %
    of its width (a head turned about 50 degrees), ``half`` its left half only (a stand-in for a profile, and
    what a face half hidden behind something shows: one eye, half the mouth); ``profile`` a real profile photo
    (``profile_image``, facing right) ``h`` high and as wide as its aspect makes it, ``profile-left`` the same
    mirrored. Returns float32."""
    if look in ("profile", "profile-left"):
        img = profile_image() if look == "profile" else profile_image()[:, ::-1]
        return _resize(img, h, max(4, int(round(h * PROFILE_ASPECT))))
    if look == "frontal":
        return _resize(face, h, w)
    if look == "squeezed":
        return _resize(face, h, max(4, int(round(0.6 * w))))
    if look == "half":
        return _resize(face[:, : face.shape[1] // 2], h, max(4, w // 2))
    raise ValueError(f"look must be one of {', '.join(LOOKS)}, got {look!r}")


def _paste(frame: np.ndarray, img: np.ndarray, x: int, y: int) -> list[int] | None:
    """Paste ``img`` with its top-left corner at (x, y), which may lie outside the frame: only the visible
    part is drawn. Returns the visible box [x1, y1, x2, y2] (exclusive), or None when nothing is visible."""
    H, W = frame.shape[:2]
    h, w = img.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 <= x1 or y2 <= y1:
        return None
    frame[y1:y2, x1:x2] = img[y1 - y:y2 - y, x1 - x:x2 - x]
    return [x1, y1, x2, y2]


def _background(rng: np.random.Generator, bh: int, bw: int) -> np.ndarray:
    """A cluttered, non-flat RGB uint8 background of bh x bw (computed once)."""
    img = _resize(rng.random((max(2, bh // 96 + 2), max(2, bw // 96 + 2), 3), dtype=np.float32) * 255, bh, bw)
    img += _resize(rng.random((max(2, bh // 24 + 2), max(2, bw // 24 + 2), 3), dtype=np.float32) * 60 - 30,
                   bh, bw)
    gy = np.linspace(-40, 40, bh, dtype=np.float32)[:, None, None]
    gx = np.linspace(30, -30, bw, dtype=np.float32)[None, :, None]
    img += gy * np.array([1.0, 0.3, -0.5], np.float32) + gx * np.array([-0.4, 0.6, 1.0], np.float32)
    n_shapes = int(bh * bw / (140 * 140)) + 4
    for _ in range(n_shapes):
        color = rng.random(3, dtype=np.float32) * 255
        sz = int(rng.integers(8, max(9, min(bh, bw) // 6)))
        cy, cx = int(rng.integers(0, bh)), int(rng.integers(0, bw))
        y0, y1, x0, x1 = max(0, cy - sz), min(bh, cy + sz), max(0, cx - sz), min(bw, cx + sz)
        if y1 <= y0 or x1 <= x0:
            continue
        kind = rng.integers(0, 3)
        if kind == 0:  # rectangle
            img[y0:y1, x0:x1] = color
        elif kind == 1:  # disc
            yy, xx = np.ogrid[y0:y1, x0:x1]
            m = (yy - cy) ** 2 + (xx - cx) ** 2 <= sz * sz
            img[y0:y1, x0:x1][m] = color
        else:  # stripes
            yy, xx = np.ogrid[y0:y1, x0:x1]
            m = ((xx + yy) // max(2, sz // 4)) % 2 == 0
            img[y0:y1, x0:x1][m] = color
    img += rng.normal(0, 6, (bh, bw, 1)).astype(np.float32)  # fine grain so the encoder spends bits
    return np.clip(img, 0, 255).astype(np.uint8)


def _fps_fraction(fps) -> Fraction:
    for ntsc in (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)):
        if abs(float(fps) - float(ntsc)) < 0.005:  # 23.976 / 29.97 / 59.94 -> exact NTSC rates
            return ntsc
    f = Fraction(fps).limit_denominator(1001)
    if f <= 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    return f


def _container_format(path: Path, container) -> str:
    if container:
        try:
            return _FMT_ALIASES[container]
        except KeyError:
            raise ValueError(f"unsupported container {container!r} (mp4, mov, mkv, webm, avi, mpegts)") from None
    try:
        return _CONTAINERS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot infer container from {path.name!r}; use .mp4/.mov/.mkv/.webm/.avi/.ts/.mts "
                         f"or container=") from None


def _codec_params(codec, bframes, gop, keyframes_only_first):
    if codec.startswith("libvpx"):  # WebM: fast real-time VP8/VP9, constant quality, no hidden alt-ref frames
        return {"deadline": "realtime", "cpu-used": "8", "b": "0", "lag-in-frames": "0",
                **({"g": str(int(gop))} if gop and not keyframes_only_first else {})}
    params = [f"bframes={int(bframes)}"]
    if keyframes_only_first:
        params += ["keyint=-1" if "265" in codec else "keyint=infinite", "scenecut=0"]
    elif gop:
        params += [f"keyint={int(gop)}", f"min-keyint={int(gop) if '265' in codec else max(1, int(gop) // 2)}",
                   "scenecut=0"]
    if "265" in codec:
        params += ["open-gop=0", "log-level=error"]
        return {"x265-params": ":".join(params)}
    return {"x264-params": ":".join(params)}


class _Audio:
    """Tone sweep + noise, stereo, generated in chunks on demand."""

    def __init__(self, container, kind, seed):
        name = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame", "pcm": "pcm_s16le",
                "adpcm": "adpcm_ima_wav"}.get(kind)
        if name is None:
            raise ValueError(f"audio must be None, 'aac', 'opus', 'mp3', 'pcm' or 'adpcm', got {kind!r}")
        if name == "libopus" and "libopus" not in __import__("av").codec.codecs_available:
            name = "opus"
        self.stream = container.add_stream(name, rate=_AUDIO_RATE, layout="stereo")
        if name == "opus":
            self.stream.codec_context.options = {"strict": "experimental"}
        self.fmt = self.stream.codec_context.format.name
        self.chunk = 960 if "opus" in name else 1152 if "mp3" in name else 1024
        if name.startswith("adpcm"):  # fixed-size blocks: every frame but the last must be exactly one
            self.stream.codec_context.open()
            self.chunk = self.stream.codec_context.frame_size or self.chunk
        self.n = 0
        self.rng = np.random.default_rng(seed + 7919)
        self.phase = 0.0

    def _samples(self, n):
        t = (self.n + np.arange(n)) / _AUDIO_RATE
        freq = 220 + 660 * (0.5 - 0.5 * np.cos(2 * np.pi * t / 4.0))  # sweep 220..880 Hz, 4 s period
        ph = self.phase + np.cumsum(2 * np.pi * freq / _AUDIO_RATE)
        self.phase = float(ph[-1])
        tone = 0.25 * np.sin(ph)
        left = tone + 0.03 * self.rng.standard_normal(n)
        right = 0.8 * tone + 0.03 * self.rng.standard_normal(n)
        return np.stack([left, right]).astype(np.float32)

    def encode_until(self, container, total):
        import av
        while self.n < total:
            n = min(self.chunk, total - self.n)
            s = self._samples(n)
            planar = self.fmt.endswith("p")
            arr = s if planar else s.T.reshape(1, -1)
            if self.fmt.startswith("s16"):
                arr = (arr * 32767).astype(np.int16)
            elif self.fmt.startswith("s32"):
                arr = (arr * 2147483647).astype(np.int32)
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=self.fmt, layout="stereo")
            fr.sample_rate = _AUDIO_RATE
            fr.pts = self.n
            fr.time_base = Fraction(1, _AUDIO_RATE)
            self.n += n
            container.mux(self.stream.encode(fr))

    def flush(self, container):
        container.mux(self.stream.encode(None))


def make_clip(path, *, width=640, height=360, fps=30, seconds=3.0, codec="libx264", pix_fmt="yuv420p",
              bframes=2, gop=None, keyframes_only_first=False, vfr=False, rotation=0,
              audio=None, faces=1, face_size=(80, 110), container=None, seed=0, metadata=None,
              preset="ultrafast", crf=23, appear=None, time_base=None, start=0, keyframes=None,
              trim=0, paths=None, looks=None) -> dict:
    """Write a synthetic clip to ``path`` and return its ground truth (see module docstring).

    ``face_size`` is the (min, max) face width in pixels (height follows the crop's aspect, ~1.11x);
    faces too large for the frame are shrunk to fit.  ``pix_fmt`` 4:2:0/4:2:2 is upgraded to 4:4:4
    when width or height is odd.  ``audio`` is None, "aac" or "opus" (48 kHz stereo).  ``appear``: for
    each face, the frame index from which it is in the picture (before it, it is absent from the frame
    and from the ground truth).

    Timestamp shapes (``tests/test_timestamps.py``): ``time_base`` ("num/den" or a Fraction) is the stream
    and encoder time base (default 1/fps, or 1/90000 with ``vfr``); each frame's pts is its time rounded to
    it, so e.g. 1/12800 at 30 fps gives 426/427-tick steps. ``start`` (seconds, exact as a Fraction) is the
    first frame's time. ``keyframes`` lists the frame indices encoded as IDR frames (the first frame is
    always one); no other frame is a keyframe. ``trim`` (MP4/MOV): the first ``trim`` frames are stored
    before the edit list's start, as in a clip trimmed without re-encoding: decoded as references, never
    shown; the ground truth holds the shown frames only. The muxer may store a coarser or finer time base (MP4 at
    least 10000 ticks/s, Matroska 1 ms, the start as a millisecond edit list): the returned ``pts``,
    ``time_base`` and ``keyframes`` are read back from the file.

    Edge tests (``edge_clip``): ``paths`` gives, per face, its top-left corner (x, y) on every frame (None:
    absent) instead of the smooth in-frame path; it may lie partly or wholly outside the frame, and the ground
    truth then holds the visible part only. ``looks`` gives, per face, ``frontal``, ``squeezed`` or ``half``
    (see ``_look``; the face's width follows its look).
    """
    import av

    path = Path(path)
    fmt = _container_format(path, container)
    width, height = int(width), int(height)
    if width < 16 or height < 16:
        raise ValueError("width and height must be >= 16")
    if codec not in av.codec.codecs_available:
        raise ValueError(f"codec {codec!r} is not available in this PyAV/FFmpeg build")
    if audio == "opus" and fmt == "mov":
        raise ValueError("the mov muxer cannot store Opus audio; use .mp4 or .mkv (or audio='aac')")
    if fmt == "webm" and codec not in ("libvpx-vp9", "libvpx", "libaom-av1", "libsvtav1"):
        raise ValueError(f"WebM holds only VP8/VP9/AV1 video, not {codec!r}; use codec='libvpx-vp9'")
    if fmt == "webm" and audio not in (None, "opus"):
        raise ValueError("WebM holds only Opus/Vorbis audio; use audio='opus'")
    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90")
    if (width % 2 or height % 2) and pix_fmt in _ODD_SAFE:
        pix_fmt = _ODD_SAFE[pix_fmt]
    if paths is not None and len(paths) != int(faces):
        raise ValueError(f"paths: one path per face ({faces}), got {len(paths)}")
    fpsq = _fps_fraction(fps)
    rng = np.random.default_rng(seed)
    tb_req = Fraction(time_base) if time_base is not None else None  # "num/den" strings work too
    start = Fraction(start)
    keyframes = sorted({0, *(int(k) for k in keyframes)}) if keyframes is not None else None

    # --- timeline (seconds, presentation order) ---
    if vfr:
        tb = tb_req or Fraction(1, 90000)
        times, t = [], 0.0
        durs = []
        while t < seconds - 1e-9:
            d = float(rng.uniform(1.0, 2.5)) / float(fpsq)
            times.append(t)
            durs.append(d)
            t += d
        pts = [round(x * 90000) for x in times] if tb == Fraction(1, 90000) else \
            [round(Fraction(x) / tb) for x in times]
        end_time = t
    else:
        tb = 1 / fpsq
        n = max(1, int(round(seconds * float(fpsq))))
        pts = list(range(n)) if tb_req is None else [round(Fraction(i) / fpsq / tb_req) for i in range(n)]
        tb = tb_req or tb
        end_time = n / float(fpsq)
    if start:
        pts = [p + round(start / tb) for p in pts]
        end_time += float(start)
    if len(set(pts)) != len(pts):
        raise ValueError(f"time base {tb} is too coarse for {fps} fps: frames would share a timestamp")
    n_frames = len(pts)
    times = [p * float(tb) for p in pts]

    # --- background & faces ---
    pad_x, pad_y = max(64, width // 3) & ~1, max(48, height // 3) & ~1
    bg = _background(rng, height + pad_y, width + pad_x)
    per_x, per_y = rng.uniform(6, 10), rng.uniform(8, 13)
    face_src = face_image() if faces else None
    face_specs = []
    if faces:
        aspect = face_src.shape[0] / face_src.shape[1]
        lo, hi = int(face_size[0]), int(face_size[1])
        if lo > hi or lo < 4:
            raise ValueError(f"bad face_size {face_size!r}")
        for _ in range(int(faces)):
            fw = int(rng.integers(lo, hi + 1))
            fh = int(round(fw * aspect))
            scale = min(1.0, (width - 2) / fw, (height - 2) / fh)
            fw, fh = max(4, int(fw * scale)), max(4, int(fh * scale))
            look = looks[len(face_specs)] if looks else "frontal"
            img = np.clip(_look(face_src, fh, fw, look) * rng.uniform(0.85, 1.1), 0, 255).astype(np.uint8)
            fh, fw = img.shape[:2]
            face_specs.append(dict(img=img, w=fw, h=fh,
                                   px=rng.uniform(3, 7), py=rng.uniform(4, 9),
                                   phx=rng.uniform(0, 2 * np.pi), phy=rng.uniform(0, 2 * np.pi)))

    # --- output ---
    copts = {}
    if metadata and fmt in ("mp4", "mov"):
        copts["movflags"] = "use_metadata_tags"
    if path.suffix.lower() in _M2TS:
        copts["mpegts_m2ts_mode"] = "1"
    with av.open(str(path), "w", format=fmt, options=copts) as out:
        if metadata:
            for k, v in metadata.items():
                out.metadata[str(k)] = str(v)
        vs = out.add_stream(codec, rate=fpsq)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.time_base = tb
        cc = vs.codec_context
        cc.time_base = tb
        if pix_fmt.startswith("yuvj"):
            cc.color_range = 2  # JPEG / full range
        opts = {"crf": str(crf)} if codec.startswith("libvpx") else {"preset": str(preset), "crf": str(crf)}
        opts.update(_codec_params(codec, bframes, gop, keyframes_only_first or keyframes is not None))
        if keyframes is not None:
            opts["forced-idr"] = "1"  # a forced keyframe is an IDR frame (decodable on its own)
        if keyframes_only_first or keyframes is not None:
            cc.gop_size = 100000
        elif gop:
            cc.gop_size = int(gop)
        cc.max_b_frames = int(bframes)
        cc.options = opts
        if rotation:
            vs.set_display_rotation(float(rotation))
        aud = _Audio(out, audio, seed) if audio else None

        boxes_all = []
        frame = np.empty((height, width, 3), np.uint8)  # reused: avoids a fresh allocation per frame
        for i in range(n_frames):
            t = times[i]
            ox = int(round(pad_x * (0.5 - 0.5 * math.cos(2 * math.pi * t / per_x))))
            oy = int(round(pad_y * (0.5 - 0.5 * math.cos(2 * math.pi * t / per_y))))
            np.copyto(frame, bg[oy:oy + height, ox:ox + width])
            boxes = []
            for fi, f in enumerate(face_specs):
                if appear is not None and fi < len(appear) and i < int(appear[fi]):
                    continue
                if paths is not None:
                    if paths[fi][i] is None:
                        continue
                    x, y = (int(round(v)) for v in paths[fi][i])
                else:
                    x = int(round((width - f["w"]) * (0.5 + 0.48 * math.sin(2 * math.pi * t / f["px"] + f["phx"]))))
                    y = int(round((height - f["h"]) * (0.5 + 0.48 * math.sin(2 * math.pi * t / f["py"] + f["phy"]))))
                box = _paste(frame, f["img"], x, y)
                if box:
                    boxes.append(box)
            boxes_all.append(boxes)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pix_fmt != "rgb24":
                vf = vf.reformat(format=pix_fmt)
            vf.pts = pts[i]
            vf.time_base = tb
            if keyframes is not None:
                vf.pict_type = av.video.frame.PictureType.I if i in keyframes else \
                    av.video.frame.PictureType.NONE
            out.mux(vs.encode(vf))
            if aud:
                t_next = times[i + 1] if i + 1 < n_frames else end_time
                aud.encode_until(out, int(round(t_next * _AUDIO_RATE)))
        out.mux(vs.encode(None))
        if aud:
            aud.flush(out)

    if trim:
        _trim(path, fmt, Fraction(pts[int(trim)] - pts[0]) * tb)
        n_frames -= int(trim)
        boxes_all = boxes_all[int(trim):]

    # --- read back timestamps as stored (shown frames only) ---
    with av.open(str(path)) as inp:
        s = inp.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in inp.demux(s) if p.pts is not None and not p.is_discard]
        stored_pts = sorted(p for p, _ in packets)
        stored_tb = s.time_base
    stored_keys = sorted(stored_pts.index(p) for p, key in packets if key)
    if len(stored_pts) != n_frames:
        raise RuntimeError(f"wrote {n_frames} frames but {path} holds {len(stored_pts)} video packets")

    return {
        "path": str(path), "width": width, "height": height, "frames": n_frames,
        "pts": stored_pts, "time_base": f"{stored_tb.numerator}/{stored_tb.denominator}",
        "faces": boxes_all,
        "fps": f"{fpsq.numerator}/{fpsq.denominator}", "duration": end_time, "codec": codec,
        "pix_fmt": pix_fmt, "container": fmt, "rotation": int(rotation) % 360, "audio": audio, "vfr": bool(vfr),
        "bframes": int(bframes), "gop": gop, "keyframes_only_first": bool(keyframes_only_first),
        "seed": seed, "metadata": dict(metadata or {}), "keyframes": stored_keys,
    }


def _trim(path: Path, fmt: str, cut: Fraction) -> None:
    """Remux ``path`` with every timestamp ``cut`` seconds earlier: the mov muxer starts its edit lists at
    time 0, so what came before it is kept but not shown (as in a clip trimmed without re-encoding)."""
    import av

    if fmt not in ("mp4", "mov"):
        raise ValueError("trim needs an MP4/MOV output (edit lists)")
    tmp = path.with_name(path.name + ".trim" + path.suffix)
    with av.open(str(path)) as src, av.open(str(tmp), "w", format=fmt) as dst:
        streams = {}
        for s in src.streams:
            streams[s.index] = dst.add_stream_from_template(s)
            streams[s.index].time_base = s.time_base
        for pkt in src.demux():
            if pkt.size == 0:
                continue
            shift = round(cut / pkt.time_base)
            pkt.pts, pkt.dts = pkt.pts - shift, (pkt.dts - shift if pkt.dts is not None else None)
            pkt.stream = streams[pkt.stream.index]
            dst.mux(pkt)
    os.replace(tmp, path)


def edge_clip(path, *, axis: str, fps, speed: float, looks=("frontal", "frontal"), width: int = 320,
              height: int = 180, face: int = 56, margin: int = 2, seed: int = 0, **kw) -> dict:
    """A clip of two faces crossing the picture in opposite directions along ``axis`` ("horizontal": one
    enters through the left edge and leaves through the right, the other the other way, in the upper and the
    lower half; "vertical": top to bottom and back, in the left and the right half), in straight lines at
    ``speed`` face widths per frame, with ``margin`` frames without them before and after. ``looks``: one
    per face (see ``_look``); ``face``: a frontal face's width. Ground truth as ``make_clip`` (the visible
    part of every face on every frame), plus ``axis``, ``speed``, ``looks``."""
    if axis not in ("horizontal", "vertical"):
        raise ValueError(f"axis must be horizontal or vertical, got {axis!r}")
    fh = int(round(face * (_FACE_ROWS[1] - _FACE_ROWS[0]) / (_FACE_COLS[1] - _FACE_COLS[0])))
    step = float(speed) * face
    tracks = []
    for n, look in enumerate(looks[:2]):
        fw = {"frontal": face, "squeezed": max(4, int(round(0.6 * face))), "half": max(4, face // 2),
              "profile": max(4, int(round(fh * PROFILE_ASPECT))),
              "profile-left": max(4, int(round(fh * PROFILE_ASPECT)))}[look]
        size, across, lane = (fw, width, height) if axis == "horizontal" else (fh, height, width)
        other = fh if axis == "horizontal" else fw
        side = (lane / 2 - other) / 2 + n * lane / 2  # the middle of its half of the picture
        along, x = [], -size + step / 2  # from just inside the entry edge until wholly outside the exit edge
        while x < across:
            along.append(x if n == 0 else across - size - x)
            x += step
        tracks.append([(a, side) if axis == "horizontal" else (side, a) for a in along])
    n_frames = max(len(t) for t in tracks) + 2 * int(margin)
    paths = [[None] * int(margin) + t + [None] * (n_frames - len(t) - int(margin)) for t in tracks]
    gt = make_clip(path, width=width, height=height, fps=fps, seconds=n_frames / float(_fps_fraction(fps)),
                   faces=len(paths), face_size=(face, face), seed=seed, paths=paths, looks=list(looks[:2]), **kw)
    gt.update(axis=axis, speed=float(speed), looks=list(looks[:2]))
    return gt


def decimate(source, path, *, step: int = 3, fps=10, crf: int = 16, preset: str = "veryfast") -> dict:
    """A low-frame-rate copy of a real clip: every ``step``-th decoded frame of ``source`` (frames 0, step,
    2*step, ...), re-encoded with libx264 (CRF ``crf``, no B-frames) at ``fps`` into ``path`` (MP4), video
    only; written to a partial file and renamed, so ``path`` is complete or absent. Returns
    ``{"path", "source", "step", "frames", "fps", "width", "height", "pts", "time_base"}``. No ground truth:
    the faces in a real clip are only known to a detector (bench/recall.py's reference)."""
    import av

    path, fpsq = Path(path), _fps_fraction(fps)
    if int(step) < 1:
        raise ValueError(f"step must be >= 1, got {step!r}")
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    n = 0
    with av.open(str(source)) as inp, av.open(str(tmp), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vs = out.add_stream("libx264", rate=fpsq)
        vs.width, vs.height = vin.codec_context.width, vin.codec_context.height
        vs.pix_fmt = "yuv420p"
        tb = vs.time_base = 1 / fpsq  # the muxer changes the stream's time base once it writes the header
        vs.options = {"crf": str(int(crf)), "preset": preset, "x264-params": "bframes=0"}
        for i, frame in enumerate(inp.decode(vin)):
            if i % int(step):
                continue
            f = frame.reformat(format="yuv420p")
            f.pts, f.time_base = n, tb
            out.mux(vs.encode(f))
            n += 1
        out.mux(vs.encode(None))
    os.replace(tmp, path)
    with av.open(str(path)) as inp:
        s = inp.streams.video[0]
        pts = sorted(p.pts for p in inp.demux(s) if p.pts is not None)
        tb, w, h = s.time_base, s.codec_context.width, s.codec_context.height
    if len(pts) != n:
        raise RuntimeError(f"wrote {n} frames but {path} holds {len(pts)} video packets")
    return {"path": str(path), "source": str(source), "step": int(step), "frames": n,
            "fps": f"{fpsq.numerator}/{fpsq.denominator}", "width": w, "height": h, "pts": pts,
            "time_base": f"{tb.numerator}/{tb.denominator}"}


def make_bad_inputs(dir) -> dict:
    """Write broken inputs into ``dir``; returns {name: path}.

    empty.mp4 (0 bytes), random.mp4 (random bytes), truncated.mp4 (first 40% of a valid mp4 whose moov
    atom is at the end), audio_only.m4a (mp4 with a single AAC stream), text.mp4 (plain text).
    """
    import av

    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    p = d / "empty.mp4"
    p.write_bytes(b"")
    out["empty"] = str(p)
    p = d / "random.mp4"
    p.write_bytes(np.random.default_rng(1234).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes())
    out["random"] = str(p)

    full = d / "_full_for_truncation.mp4"
    make_clip(full, width=320, height=240, seconds=2.0, faces=1, face_size=(60, 70), audio="aac", seed=5)
    data = full.read_bytes()
    full.unlink()
    p = d / "truncated.mp4"
    p.write_bytes(data[: int(len(data) * 0.4)])
    out["truncated"] = str(p)

    p = d / "audio_only.m4a"
    with av.open(str(p), "w", format="mp4") as c:
        a = _Audio(c, "aac", 0)
        a.encode_until(c, 2 * _AUDIO_RATE)
        a.flush(c)
    out["audio_only"] = str(p)

    p = d / "text.mp4"
    p.write_text("This is not a video.\nJust some text renamed to .mp4.\n" * 20)
    out["text"] = str(p)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m testmedia",
                                 description="Generate a synthetic clip with moving faces + ground truth.")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--codec", default="libx264")
    ap.add_argument("--pix-fmt", default="yuv420p")
    ap.add_argument("--audio", choices=["aac", "opus"], default=None)
    ap.add_argument("--faces", type=int, default=1)
    ap.add_argument("--face-size", type=int, nargs=2, metavar=("MIN", "MAX"), default=(80, 110))
    ap.add_argument("--rotation", type=int, default=0)
    ap.add_argument("--vfr", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="ultrafast")
    ap.add_argument("--crf", type=int, default=23)
    ap.add_argument("--truth", help="also write the full ground truth (all boxes) as JSON here")
    ap.add_argument("--json", action="store_true", help="print the clip's facts as JSON (default: one line)")
    a = ap.parse_args(argv)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    gt = make_clip(a.out, width=a.width, height=a.height, seconds=a.seconds, fps=a.fps, codec=a.codec,
                   pix_fmt=a.pix_fmt, audio=a.audio, faces=a.faces, face_size=tuple(a.face_size),
                   rotation=a.rotation, vfr=a.vfr, seed=a.seed, preset=a.preset, crf=a.crf)
    if a.truth:
        Path(a.truth).write_text(json.dumps(gt))
    summary = {k: v for k, v in gt.items() if k not in ("pts", "faces")}
    summary["face_boxes_per_frame"] = a.faces
    summary["first_pts"] = gt["pts"][:3]
    summary["last_pts"] = gt["pts"][-1]
    summary["size_bytes"] = os.path.getsize(a.out)
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        audio = f", {a.audio} audio" if a.audio else ""
        print(f"generated {a.out}: {a.width}x{a.height}, {a.seconds:g} s at {a.fps:g} fps, {a.faces} moving "
              f"face(s){audio}, {summary['size_bytes'] // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
