"""Shared fixtures: the verified face model and generated media (tests make their own videos)."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import pytest

from redactor.model import default_centerface_path, fetch_centerface

# Tests that run the detector in the pytest process itself keep OpenCV single-threaded there: an OpenCV thread
# pool does not survive fork(), and later tests fork worker processes from this same process (the engine's
# own parent process never runs OpenCV work; see redactor/pool.py).
cv2 = pytest.importorskip("cv2")
cv2.setNumThreads(1)


@pytest.fixture(scope="session", autouse=True)
def temporary_files_under_pytest(tmp_path_factory):
    """Every temporary file or directory made in the test process (CDK synth outputs, the engine's work
    directories, ``tempfile.mkdtemp`` anywhere) goes under pytest's base temporary directory, which pytest
    manages (it keeps the last few runs' and removes older ones), so a test run leaves nothing else in /tmp."""
    import tempfile

    base = tmp_path_factory.mktemp("tmp")
    saved = tempfile.tempdir
    tempfile.tempdir = str(base)
    try:
        yield base
    finally:
        tempfile.tempdir = saved


@pytest.fixture(scope="session")
def model_path():
    """The real CenterFace model, fetched and verified once (make test runs `redactor fetch-model` first)."""
    return str(fetch_centerface(default_centerface_path()))


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """Lazily generated clips, cached per session: media("name", **make_clip kwargs) -> ground truth."""
    from testmedia import make_clip
    root = tmp_path_factory.mktemp("media")
    cache = {}

    def get(name, **kw):
        if name not in cache:
            cache[name] = make_clip(str(root / name), **kw)
        return cache[name]
    return get


def video_times(path):
    """Sorted presentation times (exact Fractions of seconds) of every video packet."""
    with av.open(path) as c:
        vs = c.streams.video[0]
        return sorted(Fraction(p.pts) * p.time_base for p in c.demux(vs) if p.pts is not None)


def audio_packets(path):
    """[(stream order, pts seconds, bytes)] of every audio packet, for bit-exact comparison."""
    out = []
    with av.open(path) as c:
        for n, s in enumerate(c.streams.audio):
            for p in c.demux(s):
                if p.size:
                    out.append((n, Fraction(p.pts) * p.time_base if p.pts is not None else None, bytes(p)))
    return out


def decode_gray(path, limit=None):
    """Decoded frames as grayscale numpy arrays (stored orientation)."""
    frames = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="gray"))
            if limit and len(frames) >= limit:
                break
    return frames


def no_partial_files(directory) -> list[str]:
    return [n for n in os.listdir(directory) if ".partial" in n]
