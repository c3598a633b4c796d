"""The visual HTML report: self-contained, built from the redacted output (no unredacted face on the page),
its thumbnails and counts match the JSON report, written atomically beside the other outputs."""
from __future__ import annotations

import base64
import io
import json
import os
from fractions import Fraction
from html.parser import HTMLParser

import av
import pytest
from PIL import Image

from redactor import Config, redact_file
from redactor.cli import main
from redactor.detectors import CenterFace
from redactor.report import distinct_faces
from redactor.report_html import OutputFrames, flagged_gaps, per_second, render

from .conftest import no_partial_files


class _Page(HTMLParser):
    """Every tag with its attributes, and the page's text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def images(self):
        return [a for t, a in self.tags if t == "img"]


def _decode(src: str, mime: str) -> Image.Image:
    prefix = f"data:{mime};base64,"
    assert src.startswith(prefix), src[:40]
    img = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
    img.load()
    return img


def _faces(det: CenterFace, img: Image.Image):
    return det([av.VideoFrame.from_image(img.convert("RGB")).reformat(format="yuv420p")])[0]


def test_html_report_shows_only_redacted_frames_matching_the_json_report(media, model_path, tmp_path):
    clip = media("report_faces.mp4", width=640, height=360, seconds=2.0, faces=2, face_size=(70, 100))
    out, rep, page_path = tmp_path / "out.mp4", tmp_path / "r.json", tmp_path / "r.html"
    # threshold 0.5: the default detector (YuNet) scores the faces 0.94 and, on the last frame's fine pass, a
    # 133x145 px patch of background 0.35 (at its threshold): a third "face" there would make the face counts
    # below count a false box, not the report's arithmetic
    redact_file(clip["path"], str(out), Config(model_path=model_path, workers=2, segment_seconds=1.0, threshold=0.5),
                report_path=str(rep), report_html_path=str(page_path))
    report = json.loads(rep.read_text())
    text = page_path.read_text()
    page = _Page(text)

    # self-contained: every image is a data: URI, no script, nothing to fetch, CSP forbids anything else
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    assert all(not a.get("href") for _, a in page.tags)
    assert all(a["src"].startswith("data:image/") for a in page.images())
    assert any(t == "meta" and "default-src 'none'" in a.get("content", "") for t, a in page.tags)

    # the timeline decodes
    timeline = [a for a in page.images() if a.get("data-role") == "timeline"]
    assert len(timeline) == 1 and _decode(timeline[0]["src"], "image/png").size[0] >= 600

    # thumbnails: indices, times and face counts are the JSON report's
    thumbs = [a for a in page.images() if "data-frame" in a]
    assert len(thumbs) >= 6
    records = {d["frame"]: d for d in report["detections"]}
    tb = Fraction(clip["time_base"])
    for a in thumbs:
        f = int(a["data-frame"])
        assert 0 <= f < clip["frames"]
        assert int(a["data-faces"]) == (records[f]["faces"] if f in records else 0)
        assert abs(float(a["data-time"]) - float((clip["pts"][f] - clip["pts"][0]) * tb)) < 1e-5
    most = [a for a in thumbs if a["data-kind"].startswith("most faces")]
    top = max(d["faces"] for d in report["detections"])
    assert most and all(int(a["data-faces"]) == top for a in most)
    assert top == 2  # the clip's two faces, each counted once
    frames = sorted(int(a["data-frame"]) for a in thumbs)
    assert frames[0] < clip["frames"] / 6 and frames[-1] >= clip["frames"] * 5 / 6 - 1  # spread over the clip

    # no face on any thumbnail, while the same detector finds the faces on the SOURCE's same frames (taken the
    # same way: same decoder path, size and JPEG), so this check fails if the page showed source pixels.
    # Threshold 0.4: the faces score 0.64-0.92 on the source thumbnails of this clip, the blurred ellipses up
    # to 0.31 (a smooth face-coloured blob; at 0.2 CenterFace fires on it), the engine redacts from 0.35.
    det = CenterFace(Config(model_path=model_path, threshold=0.4), None)
    source_thumbs = OutputFrames(clip["path"]).thumbnails(frames, 320, 0)
    checked = 0
    for a in thumbs:
        f = int(a["data-frame"])
        img = _decode(a["src"], "image/jpeg")
        assert img.size == (320, 180)
        assert len(_faces(det, img)) == 0, f"a face is visible on the thumbnail of frame {f}"
        if clip["faces"][f]:
            src_img = Image.open(io.BytesIO(source_thumbs[f]))
            assert len(_faces(det, src_img)) >= 1, f"the detector misses the source face on frame {f}"
            checked += 1
    assert checked >= 6

    # timeline data: every redacted frame is in the report's ranges, which add up to the redacted count
    assert sum(b - a for a, b in report["redacted_ranges"]) == report["counts"]["redacted_frames"]
    assert "report_html" in report["timings"]

    # two faces of 70-100 px cover far less than a fifth of the picture: nothing flagged as largely redacted
    assert report["counts"]["frames_over_20_pct_redacted"] == 0 == report["redacted_area"]["frames_over_50_pct"]
    assert 0 < report["redacted_area"]["max_pct"] < 20
    assert "No frame more than 20 % redacted" in text and "data-redacted-pct" not in text


def test_distinct_faces_counts_a_face_boxed_twice_once():
    face, track = [10, 10, 50, 60, 0.9], [12, 11, 52, 62, 0.5]  # a detector box and a track box of one face
    other = [200, 10, 240, 60, 0.8]
    assert distinct_faces([face, track, other]) == 2
    assert distinct_faces([]) == 0


def test_track_boxes_are_counted_apart_from_the_detectors(media, model_path, tmp_path):
    """Records say how many of their boxes are small-face track boxes: on frames where the detector itself
    did not run (not a coarse sample, not a fine pass), every box is a track box."""
    clip = media("small.mp4", width=480, height=270, seconds=1.0, faces=2, face_size=(16, 20))
    cfg = Config(model_path=model_path, workers=1)
    report = redact_file(clip["path"], str(tmp_path / "o.mp4"), cfg)
    k, K = cfg.schedule.every, cfg.schedule.fine
    last = clip["frames"] - 1  # the video's last frame gets a fine pass too
    between = [d for d in report["detections"] if d["frame"] % k and d["frame"] % K and d["frame"] != last]
    assert between, "the clip exercises the small-face tracker"
    assert all(d["tracked"] == len(d["boxes"]) for d in between)
    assert any(d["tracked"] < len(d["boxes"]) for d in report["detections"])
    assert all(0 <= d["tracked"] <= len(d["boxes"]) for d in report["detections"])


def test_a_faceless_second_between_seconds_with_faces_is_flagged():
    times = [i / 10 for i in range(60)]  # 6 s at 10 fps
    dets = [{"frame": i, "boxes": [[0, 0, 10, 10, 0.9]], "faces": 1, "tracked": 0}
            for i in range(60) if not 20 <= i < 30 and i < 50]
    report = {"detections": dets, "redacted_ranges": [[0, 20], [30, 50]]}
    from redactor.report_html import coverage
    rows = per_second(report, times, coverage(report, 60))
    assert [r["faces"] for r in rows] == [1, 1, 0, 1, 1, 0]
    assert flagged_gaps(rows) == [(2, 2)]  # not second 5: the video ends there


def test_cli_writes_the_html_report_only_when_asked_and_escapes_names(media, model_path, tmp_path, capsys):
    clip = media("report_cli.mp4", width=320, height=240, seconds=1.0, faces=1, face_size=(60, 70))
    odd = tmp_path / 'car <b>&"7".mp4'
    os.symlink(clip["path"], odd)
    base = [str(odd), "--model", model_path, "--workers", "1", "-q"]
    assert main(["redact", *base, "-o", str(tmp_path / "a.mp4"), "--report", str(tmp_path / "a.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("a.")) == ["a.json", "a.mp4"]
    assert main(["redact", *base, "-o", str(tmp_path / "b.mp4"), "--report", str(tmp_path / "b.json"),
                 "--report-html", str(tmp_path / "b.html")]) == 0
    text = (tmp_path / "b.html").read_text()
    assert "car &lt;b&gt;&amp;&quot;7&quot;.mp4" in text and "<b>" not in text
    assert no_partial_files(tmp_path) == []


def test_no_output_without_its_html_report(media, model_path, tmp_path, monkeypatch):
    """Rendering fails -> the run fails and leaves neither the video nor the JSON report (fail closed)."""
    import redactor.report_html as rh

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(rh, "render", broken)
    clip = media("report_cli.mp4", width=320, height=240, seconds=1.0, faces=1, face_size=(60, 70))
    rc = main(["redact", clip["path"], "--model", model_path, "--workers", "1", "-q", "-o", str(tmp_path / "c.mp4"),
               "--report", str(tmp_path / "c.json"), "--report-html", str(tmp_path / "c.html")])
    assert rc == 4
    assert list(tmp_path.iterdir()) == []


def test_render_refuses_an_output_from_another_run(media, model_path, tmp_path):
    clip = media("report_cli.mp4", width=320, height=240, seconds=1.0, faces=1, face_size=(60, 70))
    report = redact_file(clip["path"], str(tmp_path / "d.mp4"), Config(model_path=model_path, workers=1))
    report["counts"]["frames"] += 1
    from redactor.errors import RedactorError
    with pytest.raises(RedactorError, match="not the same run"):
        render(report, str(tmp_path / "d.mp4"))


def test_thumbnails_of_a_rotated_video_are_upright(media, model_path, tmp_path):
    """A portrait phone video (stored sideways, rotation 90): thumbnails are in display orientation, turned the
    same way players turn it (the source frame turned counter-clockwise, as the engine's detector sees it)."""
    import numpy as np

    clip = media("rotated90.mov", width=320, height=240, seconds=1.5, rotation=90, audio="aac", faces=1)
    out, page_path = tmp_path / "out.mov", tmp_path / "r.html"
    redact_file(clip["path"], str(out), Config(model_path=model_path, workers=1), report_html_path=str(page_path))
    thumbs = [a for a in _Page(page_path.read_text()).images() if "data-frame" in a]
    assert thumbs
    a = thumbs[0]
    img = np.asarray(_decode(a["src"], "image/jpeg").convert("L"), np.float32)
    assert img.shape == (320, 240)  # display: 240 wide, 320 high
    with av.open(clip["path"]) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == int(a["data-frame"]):
                stored = f.to_ndarray(format="gray").astype(np.float32)
                break
    upright, wrong = np.rot90(stored, 1), np.rot90(stored, -1)
    assert np.abs(img - upright).mean() < 0.5 * np.abs(img - wrong).mean()


def _wiped_share(src, out, block: int = 16) -> float:
    """Share of the blocks with detail in the grey picture ``src`` whose detail (Laplacian energy) ``out`` lost
    (keeps under a quarter of it): what a viewer sees wiped, measured on the pixels alone."""
    import cv2
    import numpy as np

    def energy(g):
        lap = cv2.Laplacian(g.astype(np.float32), cv2.CV_32F, ksize=1) ** 2
        h, w = (g.shape[0] // block) * block, (g.shape[1] // block) * block
        return lap[:h, :w].reshape(h // block, block, w // block, block).mean(axis=(1, 3))

    es, eo = energy(src), energy(out)
    detail = es >= 4.0
    return float((detail & (eo < 0.25 * es)).sum() / max(1, detail.sum()))


def test_frames_wiped_by_a_large_false_box_are_counted_and_flagged(media, tmp_path):
    """A stand-in detector finds the real face on every sample and, on one sample, a false box over most of the
    picture, which the coverage rules spread to frames around it. The JSON report's per-frame shares and counts,
    the CLI's summary and the HTML page name exactly the frames whose output pixels are wiped (measured on the
    pixels, whatever frames the rules spread the box to)."""
    import numpy as np

    from redactor.cli import summary
    from redactor.detectors.base import BaseDetector

    from .conftest import decode_gray

    clip = media("wiped.mp4", width=320, height=240, fps=10, seconds=2.0, faces=1, face_size=(40, 44))
    false_on = 10  # a sampled frame (every 2nd frame at 10 fps)

    class FalseFace(BaseDetector):
        name = "rekognition"

        def __call__(self, frames):
            out = []
            for f in frames:
                i = clip["pts"].index(f.pts)
                b = [[*box, 0.99] for box in clip["faces"][i]] + ([[40, 30, 280, 210, 0.6]] if i == false_on else [])
                out.append(np.array(b, np.float32).reshape(-1, 5))
            return out

    out, page_path = tmp_path / "out.mp4", tmp_path / "r.html"
    report = redact_file(clip["path"], str(out), Config(detector="rekognition", workers=1),
                         report_path=str(tmp_path / "r.json"), report_html_path=str(page_path),
                         detector_factory=lambda c, s: FalseFace())
    wiped = [_wiped_share(a, b) for a, b in zip(decode_gray(clip["path"]), decode_gray(str(out)))]
    assert len(wiped) == clip["frames"]
    seen = {i for i, w in enumerate(wiped) if w > 0.35}
    assert false_on in seen and len(seen) < clip["frames"]
    assert max(w for i, w in enumerate(wiped) if i not in seen) < 0.15  # the others show the small face blurred

    area = report["redacted_area"]
    large = {f: pct for f, pct in area["large_frames"]}
    assert set(large) == seen and all(pct > 50 for pct in large.values())  # the box covers ~95 %, its ellipse ~75 %
    assert report["counts"]["frames_over_20_pct_redacted"] == report["counts"]["frames_over_50_pct_redacted"] \
        == area["frames_over_50_pct"] == len(seen)
    assert area["max_frame"] in seen and area["max_pct"] == max(large.values())
    assert f"({len(seen)} more than 20 % of the picture, {len(seen)} more than 50 %: worth a look)" in summary(report)

    text = page_path.read_text()
    page = _Page(text)
    assert f"{len(seen)} frame(s) more than 20 % redacted ({len(seen)} more than 50 %)" in text
    flagged = [a for a in page.images() if "data-redacted-pct" in a]
    assert flagged and all(int(a["data-frame"]) in seen for a in flagged)
    most = [a for a in flagged if "most redacted" in a["data-kind"]]
    assert len(most) == 1 and int(most[0]["data-frame"]) == area["max_frame"]
    assert float(most[0]["data-redacted-pct"]) == area["max_pct"]
    a, b = area["ranges_over_20_pct"][0]
    assert f"Worth a look: {len(seen)} frame(s) with more than 20 % of the picture redacted" in text
    assert f"frames {a}–{b - 1}" in text or f"frame {a} " in text
