"""bench/cloud.py's model: its copies of the engine's rules (segment count, chunks per segment) agree with the
real planner and splitter on a generated clip, the published vCPU thresholds, and the cost arithmetic. The
measured numbers themselves are a bench's business (printed, never asserted)."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from redactor import Config, plan
from redactor.schedule import Schedule
from redactor.chunking import split_chunks

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cloud():
    spec = importlib.util.spec_from_file_location("bench_cloud", ROOT / "bench" / "cloud.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
    assert cloud.chunk_count(seg.frames, workers, sched.context) == n


def test_vcpus_follow_the_published_thresholds(cloud):
    # github.com/rwnx/lambda-cpuinfo: 2 up to 3008 MB, 3 to 5307, 4 to 7076, 5 to 8845, 6 to 10240
    got = {mb: cloud.vcpus_for(mb) for mb in (128, 1769, 3008, 3009, 5307, 5308, 7076, 7077, 8845, 8846, 10240)}
    assert got == {128: 2, 1769: 2, 3008: 2, 3009: 3, 5307: 3, 5308: 4, 7076: 4, 7077: 5, 8845: 5, 8846: 6,
                   10240: 6}


def _measured(per_frame=0.1):
    return {"redact_core_s_per_frame": per_frame, "plan_core_s_per_frame": 0.001, "stitch_core_s_per_frame": 0.001,
            "worker_fixed_core_s": 0.5, "context_fraction": 0.5, "ctx_frames": 30, "min_chunk_frames": 12}


def test_map_waves_and_the_bounding_stage(cloud):
    a = cloud.resolve({"segment_seconds": 10.0, "segment_max_seconds": 0.0})
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
    a = cloud.resolve({"segment_seconds": 10.0, "segment_max_seconds": 0.0, "graviton_factor": 1.0,
                       "parallel_efficiency": 1.0})
    m = _measured()
    r = cloud.model(m, a, 3008, 1000, 3600.0)
    assert r["chunks_per_segment"] == 2
    work = 300 * 0.1 + (2 * 30 + 2 * 30) * 0.1 * 0.5 + 2 * 0.5
    assert r["segment_compute_s"] == pytest.approx(work / (3008 / 1769))


def test_cost_is_the_sum_of_its_prices(cloud):
    """Every price scales its own line only; per-minute cost is the total over the video's minutes."""
    a = cloud.resolve({"segment_seconds": 10.0, "segment_max_seconds": 0.0})
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
    a = cloud.resolve({"segment_seconds": 10.0, "segment_max_seconds": 0.0})
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


# ---- the concurrent S3 I/O of Plan and Stitch (redactor/remote.py, lambdas/stitch, lambdas/common/s3.py) ----

def test_the_model_uses_the_engines_io_settings(cloud):
    """The read-ahead, prefetch and upload settings the model assumes are the ones the code runs with."""
    import re

    from redactor import remote

    d = {k: v[0] for k, v in cloud.ASSUMPTIONS.items()}
    assert d["stream_ahead"] == remote.STREAM_AHEAD
    assert d["stream_block_mib"] * 2 ** 20 == remote.STREAM_BLOCK
    lam = ROOT / "lambdas"
    s3_src = (lam / "common" / "s3.py").read_text()
    stitch_src = (lam / "common" / "stitching.py").read_text()

    def const(src, name):
        return eval(re.search(rf"^{name} = ([0-9* ]+)", src, re.M).group(1))  # noqa: S307 (our own literal)
    assert d["upload_in_flight"] == const(s3_src, "UPLOAD_IN_FLIGHT")
    assert d["upload_part_mib"] * 2 ** 20 == const(s3_src, "UPLOAD_PART")
    assert d["collect_threads"] == const(stitch_src, "COLLECT_THREADS")
    assert d["planned_ahead"] == remote.PLANNED_AHEAD
    assert d["planned_gap_kib"] * 1024 == remote.PLANNED_GAP


def test_concurrent_rate_is_latency_bound_until_the_network_caps_it(cloud):
    mib, lat, conn, net = 2 ** 20, 0.03, 75e6, 150e6
    one = cloud.concurrent_rate(1, 4 * mib, lat, conn, net)
    assert one == pytest.approx(4 * mib / (lat + 4 * mib / conn))
    assert cloud.concurrent_rate(2, 4 * mib, lat, conn, 1e12) == pytest.approx(2 * one)
    assert cloud.concurrent_rate(64, 4 * mib, lat, conn, net) == net


def _io_args(cloud, **kw):
    return cloud.resolve(dict({"segment_seconds": 10.0, "segment_max_seconds": 0.0}, **kw))


def test_plan_and_stitch_overlap_their_reads_with_their_compute(cloud):
    """With read-ahead the demux (Plan) and the remux (Stitch) run while the bytes arrive: each stage takes the
    slower of the two, not their sum."""
    m = dict(_measured(), plan_core_s_per_frame=0.0, stitch_core_s_per_frame=0.0)
    a = _io_args(cloud, indexed_reads=0.0)
    io_bound = cloud.model(m, a, 3008, 1000, 3600.0)
    heavy = dict(m, plan_core_s_per_frame=0.01, stitch_core_s_per_frame=0.01)  # 1080 s of demux / remux
    cpu_bound = cloud.model(heavy, a, 3008, 1000, 3600.0)
    g = a["graviton_factor"]
    assert cpu_bound["plan_compute_s"] == pytest.approx(108000 * 0.01 * g)
    assert cpu_bound["stages_s"]["plan"] - io_bound["stages_s"]["plan"] == pytest.approx(
        cpu_bound["plan_compute_s"] - io_bound["plan_io_s"])
    sp_io, sp_cpu = io_bound["stitch_parts"], cpu_bound["stitch_parts"]
    assert sp_io["remux_io_s"] > sp_io["remux_compute_s"] and sp_cpu["remux_compute_s"] > sp_cpu["remux_io_s"]
    assert cpu_bound["stages_s"]["stitch"] - io_bound["stages_s"]["stitch"] == pytest.approx(
        sp_cpu["remux_compute_s"] - sp_io["remux_io_s"])


def test_an_io_bound_stage_follows_the_read_ahead_and_the_network(cloud):
    """More GETs in flight shorten an I/O-bound Plan and Stitch until the Lambda's network caps them; a faster
    network then helps, more read-ahead does not (an upload read in full: MKV, TS)."""
    m = dict(_measured(), plan_core_s_per_frame=0.0, stitch_core_s_per_frame=0.0)

    def stages(**kw):
        r = cloud.model(m, _io_args(cloud, indexed_reads=0.0, **kw), 3008, 1000, 3600.0)
        return r["stages_s"]["plan"], r["stages_s"]["stitch"]
    one, eight, sixty_four = stages(stream_ahead=1), stages(stream_ahead=8), stages(stream_ahead=64)
    assert one[0] > 2 * eight[0] and one[1] > 1.2 * eight[1]  # (the upload does not use the read-ahead)
    assert sixty_four == pytest.approx(eight, rel=0.01)  # capped by --lambda-net-mbps at 8 already
    fast = stages(stream_ahead=64, lambda_net_mbps=600.0)
    assert fast[0] < 0.5 * eight[0] and fast[1] < 0.6 * eight[1]


def test_the_bounding_stage_is_the_longest(cloud):
    a = _io_args(cloud)
    for per_frame in (0.0, 0.0004, 0.002):
        m = dict(_measured(), plan_core_s_per_frame=per_frame, stitch_core_s_per_frame=per_frame)
        r = cloud.model(m, a, 3008, 1000, 3600.0)
        st = r["stages_s"]
        assert r["bound_by"] == max(("plan", "map", "stitch"), key=st.get)
        assert r["wall_s"] == pytest.approx(sum(st.values()))


def test_indexed_reads_fetch_the_keyframes_and_the_audio_only(cloud):
    """An MP4/MOV upload: Plan fetches its keyframes' share of the bytes (one GET per keyframe, planned_ahead at
    once) and Stitch its audio's, instead of the whole upload each; an upload read in full is not faster for it."""
    m = dict(_measured(), plan_core_s_per_frame=0.0, stitch_core_s_per_frame=0.0)
    full = cloud.model(m, _io_args(cloud, indexed_reads=0.0), 3008, 1000, 3600.0)
    idx_a = _io_args(cloud)
    idx = cloud.model(m, idx_a, 3008, 1000, 3600.0)
    assert idx_a["indexed_reads"] == 1.0 and idx["stages_s"]["plan"] < full["stages_s"]["plan"] / 3
    assert idx["stages_s"]["stitch"] < full["stages_s"]["stitch"]
    src = 3600 * idx_a["source_mbit_s"] * 1e6 / 8
    assert idx["plan_io_s"] >= src * idx_a["plan_read_fraction"] / (idx_a["lambda_net_mbps"] * 1e6)
    # latency-bound when the ranges are many and small: fewer in flight, slower
    slow = cloud.model(m, _io_args(cloud, planned_ahead=1.0), 3008, 1000, 3600.0)
    assert slow["plan_io_s"] > 5 * idx["plan_io_s"]
    keyframes = 3600 / idx_a["gop_s"]
    assert slow["plan_io_s"] >= keyframes * idx_a["s3_latency_s"]


def test_planned_time_is_bound_by_the_network_or_the_latency(cloud):
    lat, conn, net = 0.03, 75e6, 150e6
    assert cloud.planned_time(0, 0, 32, lat, conn, net) == 0.0
    assert cloud.planned_time(1e9, 10, 32, lat, conn, net) == pytest.approx(1e9 / net)  # few big ranges
    small = cloud.planned_time(1e6, 3200, 32, lat, conn, net)  # many small ranges
    assert small == pytest.approx(100 * (lat + 1e6 / 3200 / conn))


def test_audio_chunked_every_frame_is_read_whole(cloud):
    """An FFmpeg-muxed MP4 chunks its audio every video frame: the video between two chunks is under the planned
    gap, so Stitch reads the whole upload (concurrently), not one GET per frame."""
    m = dict(_measured(), plan_core_s_per_frame=0.0, stitch_core_s_per_frame=0.0)
    camera = cloud.model(m, _io_args(cloud), 3008, 1000, 3600.0)
    ffmpeg = cloud.model(m, _io_args(cloud, audio_chunk_s=1 / 30), 3008, 1000, 3600.0)
    full = cloud.model(m, _io_args(cloud, indexed_reads=0.0), 3008, 1000, 3600.0)
    assert ffmpeg["stitch_parts"]["remux_io_s"] == pytest.approx(full["stitch_parts"]["remux_io_s"])
    assert camera["stitch_parts"]["remux_io_s"] < ffmpeg["stitch_parts"]["remux_io_s"]


# ---- the segment length Plan chooses from the video's duration and the fan-out (redactor/probe.py) ----

def test_plan_lengthens_segments_only_where_the_fanout_cannot_run_them_all(cloud, clip):
    """7.3 s at 1 s segments is 7 segments. 10 at once run them all in one wave: kept short (longer ones would
    only take longer). 2 at once would take 4 waves: Plan plans longer segments, 2 of them, one wave, and
    records the length and why; segment_max_seconds 0 fixes the length."""
    from redactor.records import Plan

    base = plan(clip, Config(segment_seconds=1.0))
    wide = plan(clip, Config(segment_seconds=1.0, segment_max_seconds=4.0, fanout=10))
    assert len(wide.segments) == len(base.segments) == 7
    assert wide.segment_seconds == 1.0 and wide.segment_choice.startswith("fixed")
    narrow = plan(clip, Config(segment_seconds=1.0, segment_max_seconds=4.0, fanout=2))
    assert len(narrow.segments) == 2 and 3.6 < narrow.segment_seconds <= 4.0
    assert narrow.segment_choice.startswith("lengthened") and "2 at once" in narrow.segment_choice
    assert sum(s.frames for s in narrow.segments) == base.frame_count
    again = Plan.from_dict(narrow.to_dict())  # recorded in plan.json
    assert (again.segment_seconds, again.segment_choice) == (narrow.segment_seconds, narrow.segment_choice)
    fixed = plan(clip, Config(segment_seconds=1.0, segment_max_seconds=0.0, fanout=2))
    assert len(fixed.segments) == 7 and fixed.segment_choice == "fixed"
    # the model plans the same count from the same rule
    a = cloud.resolve({"segment_seconds": 1.0, "segment_max_seconds": 4.0, "fps": 10.0})
    seg_s, _ = cloud.planned_segment_seconds(base.source.duration, a, 2)
    assert seg_s == narrow.segment_seconds
    assert cloud.segment_count(base.source.duration, seg_s, base.source.fps) == len(narrow.segments)


def test_segment_length_keeps_the_waves_and_scales_with_the_pixels():
    from redactor.probe import REFERENCE_PIXEL_RATE, segment_length

    def length(duration, fanout, most=60.0, pixel_rate=REFERENCE_PIXEL_RATE):
        return segment_length(duration, Config(segment_seconds=10.0, segment_max_seconds=most, fanout=fanout),
                              pixel_rate)[0]
    for duration, fanout in ((3600, 8), (3600, 40), (600, 8), (3600, 10), (7200, 100)):
        s = length(duration, fanout)
        waves_short = math.ceil(duration / 10.0 / fanout)
        waves_long = math.ceil(duration / s / fanout)
        assert 10.0 <= s <= 60.0 and waves_long <= waves_short, (duration, fanout, s)
        assert waves_long == math.ceil(duration / (fanout * 60.0))  # as few waves as the maximum allows
    assert length(3600, 1000) == 10.0  # one wave anyway: kept short
    assert length(3600, 8, pixel_rate=4 * REFERENCE_PIXEL_RATE) <= 15.0  # 4K30: a quarter of 1080p30's longest


def test_the_stack_gives_plan_the_maps_fanout():
    """The deployed Plan knows the Map's max_concurrency and the longest segment (cdk.json)."""
    from stacks.settings import Settings

    ctx = json.loads((ROOT / "cdk.json").read_text())["context"]
    env = Settings(max_concurrency=ctx["max_concurrency"], segment_max_seconds=ctx["segment_max_seconds"]
                   ).engine_environment
    cfg = Config.from_env(env)
    assert cfg.fanout == ctx["max_concurrency"] and cfg.segment_max_seconds == ctx["segment_max_seconds"] > 0
    assert Config.from_env(Settings(segment_max_seconds=0).engine_environment).segment_max_seconds == 0


def test_the_bench_prints_its_help(cloud, capsys):
    """``bench/cloud.py --help`` lists every assumption flag (a '%' in an assumption's text crashed argparse's
    help formatting with a TypeError)."""
    with pytest.raises(SystemExit) as e:
        cloud.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all("--" + k.replace("_", "-") in out for k in cloud.ASSUMPTIONS)


def test_live_latency_is_the_fan_outs_makespan_plus_the_event_and_its_requests(cloud):
    """A 10 s chunk at 3008 MB: the planner's 4 + 4 + 2 s segments, segment 0 redacted here while two Redact
    invokes take the others (each with its invoke overhead and staging requests); throttled throughout, the
    whole chunk is redacted here; one stream's executions at once (live invocations x (1 + invokes)) must fit."""
    a = cloud.resolve({"graviton_factor": 1.0, "parallel_efficiency": 1.0})
    m = _measured()
    assert cloud.live_segments(10.0, 4.0) == [4.0, 4.0, 2.0] and cloud.live_segments(2.0, 4.0) == [2.0]
    assert cloud.live_segments(4.9, 4.0) == [4.9]  # a tail under a quarter of a segment joins the one before
    r = cloud.live_model(m, a, 3008, 10.0, 10)
    assert (r["segments"], r["redacted_here"], r["invokes_at_once"]) == (3, 1, 2)
    here = cloud.pool_compute(m, a, 3008, 4.0)
    assert here < r["compute_s"] < here + a["invoke_overhead_s"] + 1.0
    assert r["latency_s"] == pytest.approx(a["live_event_s"] + a["invoke_overhead_s"] + r["compute_s"] + r["io_s"])
    assert r["throttled_latency_s"] > a["live_event_s"] + cloud.pool_compute(m, a, 3008, 10.0) > r["latency_s"]
    assert r["first_chunk_latency_s"] == pytest.approx(r["latency_s"] + 2 * a["cold_start_redact_s"])
    assert r["executions"] == math.ceil(r["handler_s"] / 10.0) * 3 and r["keeps_up"]
    assert not cloud.live_model(m, a, 3008, 10.0, r["executions"] - 1)["keeps_up"]
    assert cloud.live_model(m, a, 3008, 2.0, 10)["invokes_at_once"] == 0  # one segment: nothing to fan out


def test_live_schedule_takes_the_queue_from_both_ends(cloud):
    """Segment 0 here; one invoking thread takes the front, this function the back when it is free first."""
    assert cloud.live_schedule([1.0] * 4, [2.0] * 4, 1) == (3.0, 3, 1)
    assert cloud.live_schedule([1.0] * 4, [2.0] * 4, 0) == (4.0, 4, 0)
    assert cloud.live_schedule([5.0] * 3, [2.0] * 3, 4) == (5.0, 1, 2)
