"""Scenes that tempt a face detector into false positives, with ground truth (bench/precision.py, tests).

``scene_clip(path, ...)`` writes a clip of a heavily textured background (brick, gravel, grass, a coffee cup
and a cat from ``skimage.data``, tiled and slowly panning), real faces (the astronaut crop) of the given
widths in the upper part of the picture, large skin-coloured hands and close objects (the cup, the cat)
crossing the lower part near the camera, and optionally a fisheye (barrel) warp of the whole picture, as a
wearable camera records it. The faces never overlap the hands or each other, so the ground truth is exact::

    {"path", "width", "height", "fps", "frames", "fisheye", "face_sizes",
     "faces": [[[x1, y1, x2, y2], ...] per frame], "cores": [[[x1, y1, x2, y2], ...] per frame]}

Boxes are in frame pixels, ``x2``/``y2`` exclusive; under the fisheye warp a face's box is the bounding box
of its warped rectangle. ``cores`` holds, per frame and face alike, the box of the face picture's central 60 %
(eyes, nose, mouth; warped the same way): the part a redaction must hide, where a warped face's bounding box
also takes in hair and background.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SKIN = np.array([214, 168, 140], np.float32)  # RGB, a light skin tone (hands)


def _tile(img: np.ndarray, h: int, w: int) -> np.ndarray:
    reps = (h // img.shape[0] + 1, w // img.shape[1] + 1, 1)
    return np.tile(img, reps)[:h, :w]


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def textured_background(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 h x w picture of vertical bands of real textures (brick, gravel, grass, coffee, cat)."""
    import cv2
    from skimage import data
    textures = [data.brick(), data.gravel(), data.grass(), data.coffee(), data.chelsea()]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(textures))
    out = np.empty((h, w, 3), np.uint8)
    edges = np.linspace(0, w, len(textures) + 1).astype(int)
    for n, k in enumerate(order):
        t = _rgb(textures[k])
        scale = rng.uniform(0.8, 1.6)
        t = cv2.resize(t, (int(t.shape[1] * scale), int(t.shape[0] * scale)), interpolation=cv2.INTER_LINEAR)
        out[:, edges[n]:edges[n + 1]] = _tile(t, h, edges[n + 1] - edges[n])
    return out


def hand_image(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An open hand about ``size`` px tall seen close up: a palm and five fingers in a shaded skin tone with
    creases; returns (RGB uint8 size x size, mask bool)."""
    import cv2
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    cx, cy = size // 2, int(size * 0.68)
    cv2.ellipse(mask, (cx, cy), (int(size * 0.26), int(size * 0.28)), 0, 0, 360, 1, -1)
    fw = max(3, int(size * 0.09))
    for n, (ang, length) in enumerate([(-60, 0.30), (-20, 0.44), (-5, 0.48), (10, 0.45), (25, 0.38)]):
        a = math.radians(ang - 90)
        bx = cx + int(size * 0.2 * math.cos(a)) if n == 0 else cx + int((n - 2.5) * fw * 1.9)
        by = cy - int(size * 0.12) if n else cy
        ex, ey = bx + int(size * length * math.cos(a)), by + int(size * length * math.sin(a))
        cv2.line(mask, (bx, by), (ex, ey), 1, fw * 2)
        cv2.circle(mask, (ex, ey), fw, 1, -1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    shade = 1.0 - 0.25 * ((xx - cx) ** 2 + (yy - cy) ** 2) / (size * size * 0.25)
    img = SKIN[None, None, :] * shade[:, :, None] + rng.normal(0, 5, (size, size, 1)).astype(np.float32)
    for _ in range(6):  # creases
        y0 = int(rng.uniform(0.55, 0.85) * size)
        cv2.line(img, (int(cx - size * 0.2), y0), (int(cx + size * 0.2), y0 + int(rng.uniform(-0.1, 0.1) * size)),
                 (150, 105, 90), max(1, size // 120))
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(bool)


def fisheye_maps(w: int, h: int, strength: float):
    """cv2.remap maps of a barrel warp: the output pixel at normalised radius r (1 = the corner) shows the
    input at r * (1 + strength * r^2) / (1 + strength); corners stay corners, the middle is magnified."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    half_diag = math.hypot(cx, cy)
    dx, dy = (xx - cx) / half_diag, (yy - cy) / half_diag
    r2 = dx * dx + dy * dy
    f = (1 + strength * r2) / (1 + strength)
    return (cx + dx * f * half_diag).astype(np.float32), (cy + dy * f * half_diag).astype(np.float32)


def _face_layout(sizes, w: int, h: int) -> list[tuple[int, int]]:
    """Top-left corners for faces of ``sizes`` px side by side in the upper part of a w x h picture."""
    gap = max(4, (w - sum(sizes)) // (len(sizes) + 1))
    if gap * (len(sizes) + 1) + sum(sizes) > w:
        raise ValueError(f"faces {sizes} do not fit side by side in {w} px")
    x, out = gap, []
    for s in sizes:
        out.append((x, int(h * 0.2)))
        x += s + gap
    return out


def scene_frames(*, width: int = 1280, height: int = 960, frames: int = 30,
                 face_sizes=(16, 24, 40, 64, 110, 180), fisheye: float = 0.0, hands: int = 2, seed: int = 0):
    """The scene's pictures without encoding: (RGB uint8 frame, face boxes, face cores) for each of ``frames``
    frames (arguments as ``scene_clip``'s)."""
    import cv2
    from skimage import data

    from .synth import face_image
    rng = np.random.default_rng(seed)
    n = max(1, int(frames))
    pan = max(64, width // 4)
    bg = textured_background(height, width + pan, seed)
    face = face_image()
    aspect = face.shape[0] / face.shape[1]
    sizes = [int(s) for s in face_sizes]
    corners = _face_layout(sizes, width, height)
    faces = [cv2.resize(face, (s, max(4, int(round(s * aspect)))), interpolation=cv2.INTER_AREA) for s in sizes]
    if max(f.shape[0] for f in faces) + int(height * 0.2) > int(height * 0.5):
        raise ValueError(f"the largest face does not fit in the upper half of a {height} px picture")
    props = [hand_image(int(height * rng.uniform(0.35, 0.5)), seed + k) for k in range(hands)]
    for img in (data.coffee(), data.chelsea()):
        s = int(height * 0.4)
        r = cv2.resize(img, (int(s * img.shape[1] / img.shape[0]), s), interpolation=cv2.INTER_AREA)
        props.append((r, np.ones(r.shape[:2], bool)))
    maps = fisheye_maps(width, height, fisheye) if fisheye else None
    for i in range(n):
        t = i / max(1, n - 1)
        ox = int(round(pan * t))
        frame = np.ascontiguousarray(bg[:, ox:ox + width])
        _place_props(frame, props, t, rng_seed=seed)
        masks = []
        for (x, y), f in zip(corners, faces):
            dx = int(round(8 * math.sin(2 * math.pi * t + x)))
            frame[y:y + f.shape[0], x + dx:x + dx + f.shape[1]] = f
            fh, fw = f.shape[:2]
            m = np.zeros((height, width), np.uint8)
            m[y:y + fh, x + dx:x + dx + fw] = 1
            m[y + fh // 5:y + fh - fh // 5, x + dx + fw // 5:x + dx + fw - fw // 5] = 2  # the face's core
            masks.append(m)
        if maps is not None:
            frame = cv2.remap(frame, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            masks = [cv2.remap(m, maps[0], maps[1], cv2.INTER_NEAREST) for m in masks]
        yield frame, [_bbox(m > 0) for m in masks if m.any()], [_bbox(m == 2) for m in masks if m.any()]


def scene_clip(path, *, width: int = 1280, height: int = 960, fps: int = 10, seconds: float = 3.0,
               face_sizes=(16, 24, 40, 64, 110, 180), fisheye: float = 0.0, hands: int = 2, seed: int = 0,
               crf: int = 18, preset: str = "veryfast", threads: int = 0) -> dict:
    """Write the scene described in the module doc and return its ground truth. ``face_sizes``: the faces'
    widths (px, before the warp); ``fisheye``: barrel warp strength (0 = none, 0.6 ~ a wearable's lens);
    ``hands``: how many hands cross the lower part (each at 35-50 % of the picture's height), beside a close
    coffee cup and a cat. ``threads``: x264's (0: its own choice; 1: the same bits on any machine)."""
    import av

    n = max(1, int(round(seconds * fps)))
    boxes_all, cores_all = [], []
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=int(fps))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"crf": str(crf), "preset": preset, **({"threads": str(threads)} if threads else {})}
        for i, (frame, boxes, cores) in enumerate(scene_frames(width=width, height=height, frames=n,
                                                               face_sizes=face_sizes, fisheye=fisheye,
                                                               hands=hands, seed=seed)):
            boxes_all.append(boxes)
            cores_all.append(cores)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
    return {"path": str(path), "width": width, "height": height, "fps": fps, "frames": n, "fisheye": fisheye,
            "face_sizes": [int(s) for s in face_sizes], "faces": boxes_all, "cores": cores_all}


def _bbox(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _place_props(frame: np.ndarray, props, t: float, rng_seed: int) -> None:
    """Paste the hands and objects in the lower half, each sliding across the picture as ``t`` goes 0 -> 1."""
    h, w = frame.shape[:2]
    rng = np.random.default_rng(rng_seed + 99)
    for k, (img, mask) in enumerate(props):
        ph, pw = img.shape[:2]
        start, end = rng.uniform(-0.2, 0.9), rng.uniform(-0.2, 0.9)
        x = int((start + (end - start) * t) * w)
        y = h - ph + int(rng.uniform(0, 0.15) * ph)
        x1, y1, x2, y2 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
        if x2 <= x1 or y2 <= y1:
            continue
        sub, m = img[y1 - y:y2 - y, x1 - x:x2 - x], mask[y1 - y:y2 - y, x1 - x:x2 - x]
        frame[y1:y2, x1:x2][m] = sub[m]
