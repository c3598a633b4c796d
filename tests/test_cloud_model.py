"""bench/cloud.py's model: its copies of the engine's rules (segment count, chunks per segment) agree with the
real planner and splitter on a generated clip, the published vCPU thresholds, and the cost arithmetic. The
measured numbers themselves are a bench's business (printed, never asserted)."""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

from redactor import Config, plan
from redactor.schedule import Schedule
from redactor.segment import MIN_CHUNK_FRAMES, split_chunks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cloud():
    spec = importlib.util.spec_from_file_location("bench_cloud", ROOT / "bench" / "cloud.py")
    mod = importlib.util.module_from_spec(spec)
    # bench/cloud.py does ``import common`` (bench/common.py); the AWS tests have already imported
    # lambdas/common under that name, so it is set aside while the bench loads and put back after
    other = sys.modules.pop("common", None)
    try:
        spec.loader.exec_module(mod)
    finally:
        if other is not None:
            sys.modules["common"] = other
        else:
            sys.modules.pop("common", None)
    return mod


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """7.3 s at 10 fps, a keyframe every 5 frames (so the planner can cut wherever it aims)."""
    from testmedia import make_clip
    path = tmp_path_factory.mktemp("cloud") / "c.mp4"
    make_clip(str(path), width=160, height=96, fps=10, seconds=7.3, faces=1, face_size=(30, 40),
              keyframes=list(range(0, 73, 5)))
    return str(path)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7.0, 10.0])
def test_segment_count_is_the_planners(cloud, clip, seconds):
    p = plan(clip, Config(segment_seconds=seconds))
    assert cloud.segment_count(p.source.duration, seconds, p.source.fps) == len(p.segments)


@pytest.mark.parametrize("workers", [1, 2, 3, 6])
@pytest.mark.parametrize("fine_ms", [1000.0, 0.0])
def test_chunk_count_is_the_splitters(cloud, clip, workers, fine_ms):
    cfg = Config(segment_seconds=100, fine_ms=fine_ms)
    p = plan(clip, cfg)
    seg = p.segments[0]
    sched = Schedule.from_settings(cfg.detection, p.source.fps)
    n = len(split_chunks(seg, workers, sched.context, sched.fine))
    assert cloud.chunk_count(seg.frames, workers, sched.context, MIN_CHUNK_FRAMES) == n


def test_vcpus_follow_the_published_thresholds(cloud):
    # github.com/rwnx/lambda-cpuinfo: 2 up to 3008 MB, 3 to 5307, 4 to 7076, 5 to 8845, 6 to 10240
    got = {mb: cloud.vcpus_for(mb) for mb in (128, 1769, 3008, 3009, 5307, 5308, 7076, 7077, 8845, 8846, 10240)}
    assert got == {128: 2, 1769: 2, 3008: 2, 3009: 3, 5307: 3, 5308: 4, 7076: 4, 7077: 5, 8845: 5, 8846: 6,
                   10240: 6}


def _measured(per_frame=0.1):
    return {"redact_core_s_per_frame": per_frame, "plan_core_s_per_frame": 0.001, "stitch_core_s_per_frame": 0.001,
            "worker_fixed_core_s": 0.5, "context_fraction": 0.5, "ctx_frames": 30, "min_chunk_frames": 12}


def test_map_waves_and_the_bounding_stage(cloud):
    a = cloud.resolve({"segment_seconds": 10.0})
    r10 = cloud.model(_measured(), a, 3008, 10, 3600.0)
    r1000 = cloud.model(_measured(), a, 3008, 1000, 3600.0)
    assert r10["segments"] == r1000["segments"] == 360
    assert r10["waves"] == 36 and r1000["waves"] == 1
    assert r10["stages_s"]["map"] == pytest.approx(a["map_start_s"] + a["cold_start_redact_s"]
                                                   + 36 * r10["segment_wall_s"])
    assert r10["bound_by"] == "map"
    assert r10["wall_s"] == pytest.approx(sum(r10["stages_s"].values()))


def test_redact_compute_uses_the_cpu_share_not_the_core_count(cloud):
    """3008 MB shows 2 cores but gets 3008/1769 = 1.70 vCPUs of CPU time: a segment's compute is its work
    over 1.70 cores (times the efficiency), not over 2."""
    a = cloud.resolve({"segment_seconds": 10.0, "graviton_factor": 1.0, "parallel_efficiency": 1.0})
    m = _measured()
    r = cloud.model(m, a, 3008, 1000, 3600.0)
    assert r["chunks_per_segment"] == 2
    work = 300 * 0.1 + (2 * 30 + 2 * 30) * 0.1 * 0.5 + 2 * 0.5
    assert r["segment_compute_s"] == pytest.approx(work / (3008 / 1769))


def test_cost_is_the_sum_of_its_prices(cloud):
    """Every price scales its own line only; per-minute cost is the total over the video's minutes."""
    a = cloud.resolve({"segment_seconds": 10.0})
    base = cloud.model(_measured(), a, 3008, 40, 600.0)
    double_sfn = cloud.model(_measured(), dict(a, sfn_transition_usd=2 * a["sfn_transition_usd"]), 3008, 40, 600.0)
    assert double_sfn["cost_total_usd"] - base["cost_total_usd"] == pytest.approx(base["cost_usd"]["step_functions"])
    assert base["cost_usd"]["step_functions"] == pytest.approx((6 + 2 * 60) * 0.025 / 1000)
    gb_s = base["lambda_gb_s"]
    assert base["cost_usd"]["lambda_duration"] == pytest.approx(sum(gb_s.values()) * 0.0000133334)
    # redact GB-s: every segment's Lambda time plus each container's billed cold start
    assert gb_s["redact"] == pytest.approx((60 * base["segment_wall_s"] + 40 * a["cold_start_redact_s"]) * 3008 / 1024)
    assert base["cost_per_min_usd"] == pytest.approx(base["cost_total_usd"] / 10)


def test_break_even_meets_the_target(cloud):
    a = cloud.resolve({"segment_seconds": 10.0})
    need = cloud.break_even(_measured(), a, 3008, 1000)
    at = cloud.model(_measured(need), a, 3008, 1000, 3600.0)["cost_per_min_usd"]
    above = cloud.model(_measured(need * 1.05), a, 3008, 1000, 3600.0)["cost_per_min_usd"]
    assert at == pytest.approx(cloud.TARGET_COST_PER_MIN, rel=1e-3) and above > cloud.TARGET_COST_PER_MIN
    assert math.isfinite(need) and need > 0


@pytest.mark.parametrize("size", [1, 200_000, 262_144, 262_145, 3_000_000, 11_000_000])
def test_seq_gets_is_the_range_readers(cloud, size):
    """The model counts a sequential read's GETs as the engine's RangeReader makes them (read-ahead doubling
    from MIN_BLOCK to MAX_BLOCK), and its defaults are the engine's blocks."""
    from redactor import remote
    data = bytes(size)
    r = remote.RangeReader(lambda a, b: data[a:b + 1], size, "mem")
    while r.read(32768):  # FFmpeg's avio reads in buffer-sized pieces
        pass
    assert cloud.seq_gets(size, remote.MIN_BLOCK, remote.MAX_BLOCK) == r.requests
    d = cloud.ASSUMPTIONS
    assert (d["min_block_kib"][0] * 1024, d["max_block_mib"][0] * 2 ** 20) == (remote.MIN_BLOCK, remote.MAX_BLOCK)
