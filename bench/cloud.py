"""Modelled cloud cost and wall time: what 1 min / 10 min / 1 h of 1080p30 costs and how long it takes through
the AWS stack (Plan -> Distributed Map of `redact` Lambdas -> Stitch), from per-frame core-seconds MEASURED here.

    .venv/bin/python bench/cloud.py                       # measure (4 s 1080p30 clip, one core), then model
    .venv/bin/python bench/cloud.py --seconds 3 --set detector=yunet
    .venv/bin/python bench/cloud.py --per-frame-core-s 0.1 # skip the measurement: model only (instant)
    .venv/bin/python bench/cloud.py --graviton-factor 2 --s3-read-mbps 50 ...   # any assumption, see --help

MEASURED (this machine, pinned to ONE core with os.sched_setaffinity, workers=1, so CPU time = core-seconds;
CPU time of this process and its reaped worker processes via os.times, wall beside it): the engine's real stages
in-process on a generated 1080p30 clip with faces and AAC audio: ``plan`` (probe + segment planning: demux
only), ``redact_segment`` (decode + detect + blur + encode, default ``Config()`` settings, detector printed),
``stitch`` (remux parts + audio). The detector's construction (model load) is measured on its own and modelled as
a fixed cost per worker process; the rest is divided by the frames.

MODELLED (every constant printed, each one a flag): the planner's segment count (the engine's rule, checked
against the real planner on the clip), per-segment context frames and chunk cuts (the engine's own
``split_chunks`` rule), Lambda vCPUs and CPU share per memory size, a Graviton2-vs-this-CPU speed factor, cold
starts, S3 throughput and request latency, prices (us-east-1, arm64). Output: a table per (redact memory,
Map concurrency, video length): wall time by stage (which stage bounds it) and cost per video-minute by service;
the targets (<= $0.005 per 1080p video-minute; 1 h of 1080p in <= 120 s at 1,000-way fan-out) as
PASS/MISS; then the live table: per chunk length (2, 10, 60 s) and memory, a live chunk's latency from upload to
its listing in the stream's playlist and whether one continuous stream keeps up at the stack's concurrency
(target: a 10 s chunk listed within 20 s at 3008 MB). Writes bench/out/cloud.json. A model, not a measurement of AWS: no AWS account is used.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

ROOT = common.ROOT
TARGET_COST_PER_MIN = 0.005  # USD per 1080p video-minute (target)
TARGET_HOUR_WALL_S = 120.0  # 1 h of 1080p at 1,000-way fan-out (target)
MEMORIES = (3008, 10240)
CONCURRENCIES = (10, 40, 1000)
DURATIONS = (("1 min", 60.0), ("10 min", 600.0), ("1 h", 3600.0))

# name -> (default, unit, what it is and where the value comes from). Each is a --flag (dashes for underscores).
ASSUMPTIONS: dict[str, tuple[float, str, str]] = {
    # ---- prices (us-east-1, first tier) ------------------------------------------------------------------
    "lambda_gb_s_usd": (0.0000133334, "USD/GB-s", "Lambda arm64 duration, first 7.5 B GB-s/month "
                        "(aws.amazon.com/lambda/pricing, via the search tool's pages corpus)"),
    "lambda_request_usd": (0.20 / 1e6, "USD/request", "Lambda requests, $0.20 per 1M (same page)"),
    "ephemeral_gb_s_usd": (0.0000000309, "USD/GB-s", "Lambda /tmp above the free 512 MB (same page; "
                           "plan/redact/stitch have 10240 MB)"),
    "sfn_transition_usd": (0.025 / 1000, "USD/transition", "Step Functions Standard, $0.025 per 1,000 "
                           "state transitions, us-east-1 (aws.amazon.com/step-functions/pricing)"),
    "s3_put_usd": (0.005 / 1000, "USD/request", "S3 Standard PUT/COPY/POST/LIST, $0.005 per 1,000 "
                   "(aws.amazon.com/s3/pricing, quoted by c3x.dev; the AWS page renders prices client-side)"),
    "s3_get_usd": (0.0004 / 1000, "USD/request", "S3 Standard GET/HEAD, $0.0004 per 1,000 (same)"),
    "init_billed": (1.0, "0/1", "cold-start INIT time is billed like duration (AWS Compute Blog: "
                    "'standardizes billing for INIT phase')"),
    # ---- Lambda compute ------------------------------------------------------------------------------------
    "mb_per_vcpu": (1769.0, "MB", "CPU share: one vCPU-second per second at 1,769 MB, linear in memory "
                    "(docs.aws.amazon.com/lambda: configuration-memory); so 3008 MB = 1.70, 10240 MB = 5.79 "
                    "vCPUs of CPU time although /proc shows 2 and 6 cores (measured by github.com/rwnx/"
                    "lambda-cpuinfo: 2 vCPUs up to 3008 MB, 6 from 8846 MB)"),
    "graviton_factor": (1.5, "x", "ASSUMPTION, not measured (no Arm machine here): Graviton2 core-seconds "
                        "per core-second of this CPU (an AMD EPYC with AVX-512 BF16, i.e. Zen 4 class, 3.1-3.7 GHz). "
                        "1.5 = about the clock ratio (Neoverse N1 at 2.5 GHz); 128-bit NEON vs AVX-512 in OpenCV "
                        "DNN and x264 may make it worse: try 2"),
    "parallel_efficiency": (0.9, "x", "ASSUMPTION: throughput of N worker processes / (N x one), beyond the "
                            "chunk-cut work modelled explicitly (context frames, model loads): shared caches "
                            "and memory bandwidth (docs/benchmarks.md)"),
    "cold_start_redact_s": (4.0, "s", "ASSUMPTION: INIT of redact (layers: numpy, OpenCV, PyAV, ~200 MB; "
                            "Python imports + the model file), once per container"),
    "cold_start_small_s": (2.0, "s", "ASSUMPTION: INIT of start/plan/stitch (fewer layers)"),
    "invoke_overhead_s": (0.5, "s", "ASSUMPTION: per redact invocation outside the engine and "
                          "its S3 requests (counted apart): handler set-up, the pool's forks, the part's checks"),
    # ---- S3 ---------------------------------------------------------------------------------------------
    "s3_read_mbps": (75.0, "MB/s", "ASSUMPTION: one connection reading (one GET's body) (docs/architecture.md "
                     "'Data path': 50-90 MB/s assumed there for one sequential reader, midpoint)"),
    "s3_write_mbps": (75.0, "MB/s", "ASSUMPTION: one connection writing (one UploadPart's body), as reading"),
    "lambda_net_mbps": (150.0, "MB/s", "ASSUMPTION: one Lambda's network to S3, all its connections together "
                        "(a ceiling on concurrent GETs/PUTs). Published single-download measurements: 400-700 "
                        "Mbit/s = 50-90 MB/s (circuitpeople on Medium, 2018, via the search tool's pages corpus); "
                        "concurrency assumed to reach 2x the midpoint. Try 75 (concurrency gains nothing) or 300"),
    "s3_latency_s": (0.03, "s", "ASSUMPTION: time to first byte of one S3 request; each GET and HEAD of a "
                     "sequential reader pays it (a 2 MiB block: 0.03 s + 0.028 s of transfer at 75 MB/s)"),
    "stream_ahead": (8.0, "GETs", "GETs Plan's and Stitch's readers keep in flight ahead of a sequential read, "
                     "and Stitch's part prefetcher at once (redactor/remote.py STREAM_AHEAD)"),
    "stream_block_mib": (4.0, "MiB", "one GET of that read-ahead (redactor/remote.py STREAM_BLOCK)"),
    "planned_ahead": (32.0, "GETs", "an MP4/MOV upload's sample ranges (Plan: the keyframes; Stitch: the audio) "
                      "fetched at once (redactor/remote.py PLANNED_AHEAD)"),
    "indexed_reads": (1.0, "0/1", "the upload is an MP4/MOV (phones, cameras): Plan fetches only its keyframes' "
                      "samples and Stitch only its audio samples, from the index (redactor/probe.py INDEXED_READS); "
                      "0 = every byte, as for MKV/TS/AVI uploads"),
    "audio_chunk_s": (0.8, "s", "seconds of audio per MP4 chunk, one GET each for Stitch: the shared parking-lot "
                      "camera clip has 0.79 s; an FFmpeg-muxed file chunks every video frame (0.03 s), and then the "
                      "video between two chunks is under --planned-gap-kib, so Stitch reads the whole file"),
    "planned_gap_kib": (128.0, "KiB", "planned ranges closer than this are fetched as one (redactor/remote.py "
                        "PLANNED_GAP)"),
    "collect_threads": (32.0, "requests", "Stitch's concurrent GETs of the result records and detection "
                        "sidecars (lambdas/common/stitching.py COLLECT_THREADS)"),
    "upload_in_flight": (8.0, "parts", "Stitch's output parts uploading at once (lambdas/common/s3.py "
                         "UPLOAD_IN_FLIGHT)"),
    "min_block_kib": (256.0, "KiB", "the engine's first ranged GET after a jump (redactor/remote.py MIN_BLOCK)"),
    "max_block_mib": (2.0, "MiB", "the engine's read-ahead cap: each GET of a sequential read doubles up to "
                      "this (redactor/remote.py MAX_BLOCK)"),
    "multipart_mib": (8.0, "MiB", "boto3's default multipart chunk (Redact's part uploads: PUTs per MiB)"),
    "upload_part_mib": (16.0, "MiB", "Stitch's output multipart chunk (lambdas/common/s3.py UPLOAD_PART)"),
    "plan_read_fraction": (0.08, "x upload", "bytes Plan fetches per byte of the upload: with indexed reads the "
                           "keyframes and the index (the shared parking-lot camera clip: keyframes 5.3 % of its "
                           "bytes, 7 in 377 frames), else 1.19x (docs/architecture.md 'Data path'); measured on the generated clip "
                           "and printed, not used (its keyframes weigh more than a camera's)"),
    "plan_requests_per_mib": (0.25, "GET/MiB", "Plan's GETs per MiB fetched (default: one per 4 MiB streamed "
                              "block; MEASURED here when measuring)"),
    "stitch_source_read_fraction": (0.02, "x upload", "bytes Stitch fetches of the upload for its audio: with "
                                    "indexed reads its audio samples and the index (128 kbit/s of 8 Mbit/s = 1.6 %), "
                                    "else the whole file (1.0); measured on the generated clip and printed, not used "
                                    "(FFmpeg's muxer chunks its audio every frame: read whole)"),
    "stitch_source_requests_per_mib": (0.25, "GET/MiB", "Stitch's GETs per MiB fetched of the upload "
                                       "(MEASURED here when measuring)"),
    "part_gets_extra": (0.0, "GET", "GETs per part beyond one per stream block (parts are fetched whole, their "
                        "sizes from one listing: no HEAD, no second open; MEASURED here when measuring)"),
    # ---- the video --------------------------------------------------------------------------------------
    "source_mbit_s": (8.0, "Mbit/s", "ASSUMPTION: the upload's bitrate (a typical 1080p30 H.264 camera/phone "
                      "file)"),
    "output_mbit_s": (8.0, "Mbit/s", "ASSUMPTION: the redacted output's bitrate (x264 veryfast CRF 20; "
                      "parts and output)"),
    "gop_s": (2.0, "s", "ASSUMPTION: keyframe interval of the upload (a segment's first worker decodes from "
              "the keyframe before its context frames)"),
    "fps": (30.0, "frames/s", "1080p30"),
    "live_event_s": (1.0, "s", "ASSUMPTION: S3 event -> EventBridge -> the live function's invocation (S3 "
                     "event notifications are 'typically delivered in seconds', AWS S3 user guide)"),
    "live_publish_requests": (3.0, "requests", "ASSUMPTION: playlist read + conditional write, plus half a "
                              "re-read/re-write pair for a lost race (two chunks finishing together)"),
    # ---- the workflow -----------------------------------------------------------------------------------
    "map_start_s": (2.0, "s", "ASSUMPTION: Distributed Map start (reads the manifest from S3, starts the "
                    "first children)"),
    "sfn_parent_transitions": (6.0, "transitions", "per run outside the Map (docs/cost.md)"),
    "sfn_transitions_per_segment": (2.0, "transitions", "per Map child (a Standard child execution; docs/cost.md)"),
    "stitch_report_s": (3.0, "s", "Stitch's HTML report (thumbnails) on this CPU: 3.07 s for the 1080p 10 s "
                        "clip in bench/report_html.py (docs/benchmarks.md), taken as fixed per video"),
    "plan_memory_mb": (0.0, "MB", "0 = cdk.json's plan_memory_mb"),
    "stitch_memory_mb": (0.0, "MB", "0 = cdk.json's stitch_memory_mb"),
    "small_memory_mb": (0.0, "MB", "0 = cdk.json's small_memory_mb (the starter)"),
    "ephemeral_mb": (0.0, "MB", "0 = cdk.json's redact_ephemeral_mb (plan and stitch alike)"),
    "segment_seconds": (0.0, "s", "0 = cdk.json's segment_seconds (the stack's REDACTOR_SEGMENT_SECONDS)"),
    "segment_max_seconds": (-1.0, "s", "-1 = cdk.json's segment_max_seconds: Plan lengthens segments up to this "
                            "when the Map concurrency cannot run them all at once (redactor/probe.py "
                            "segment_length, the engine's own rule); 0 = never"),
}


def stack_defaults() -> dict:
    """The deployed defaults: cdk.json's context (what `cdk deploy` uses without -c)."""
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def resolve(args: dict) -> dict:
    """Assumption values: flags, then cdk.json for the zero 'from the stack' entries."""
    a = {k: float(args.get(k, v[0]) if args.get(k) is not None else v[0]) for k, v in ASSUMPTIONS.items()}
    ctx = stack_defaults()
    for k, ck in (("plan_memory_mb", "plan_memory_mb"), ("stitch_memory_mb", "stitch_memory_mb"),
                  ("small_memory_mb", "small_memory_mb"), ("ephemeral_mb", "redact_ephemeral_mb"),
                  ("segment_seconds", "segment_seconds")):
        if not a[k]:
            a[k] = float(ctx[ck])
    if a["segment_max_seconds"] < 0:
        a["segment_max_seconds"] = float(ctx.get("segment_max_seconds", 0))
    return a


# ------------------------------------------------------------------------------------------------ the model
def vcpus_for(memory_mb: float) -> int:
    """Cores a Lambda function sees (/proc, os.sched_getaffinity) at ``memory_mb``: 2 up to 3008 MB, then one
    per 1,769 MB step up to 6 (github.com/rwnx/lambda-cpuinfo's measured thresholds)."""
    if memory_mb <= 3008:
        return 2
    return min(6, max(3, math.ceil(memory_mb / 1769 - 1e-9)))


def segment_count(duration_s: float, segment_s: float, fps: float = 30.0) -> int:
    """Segments the planner (redactor/probe.py ``plan``) cuts from a constant-rate video of ``duration_s``
    with keyframes at least every half segment: a cut at the first frame at or after every ``segment_s``
    (counted from the previous cut); no cut that would leave less than a quarter segment between it and the
    last frame."""
    n_frames = round(duration_s * fps)
    last = (n_frames - 1) / fps
    n, t = 1, segment_s
    while True:
        i = math.ceil(t * fps - 1e-6)  # first frame at or after t
        if i >= n_frames or last - i / fps < segment_s / 4:
            return n
        n += 1
        t = i / fps + segment_s


def planned_segment_seconds(duration_s: float, a: dict, concurrency: int) -> tuple[float, str]:
    """The segment length Plan chooses for this video and Map concurrency (the engine's rule, 1080p30)."""
    from redactor import Config
    from redactor.probe import segment_length

    cfg = Config(segment_seconds=a["segment_seconds"], segment_max_seconds=a.get("segment_max_seconds", 0.0),
                 fanout=int(concurrency))
    return segment_length(duration_s, cfg)


def seq_gets(nbytes: float, min_block: float = 256 * 1024, max_block: float = 2 * 2 ** 20) -> int:
    """GETs the engine's RangeReader makes reading ``nbytes`` front to back: the first ``min_block``, each
    next one twice the last, at most ``max_block``."""
    n, size, left = 0, min_block, nbytes
    while left > 0:
        n += 1
        left -= size
        size = min(max_block, size * 2)
    return n


def concurrent_rate(in_flight: float, block: float, latency: float, conn_bps: float, net_bps: float) -> float:
    """Bytes/s of ``in_flight`` requests of ``block`` bytes kept under way at once, each paying ``latency``
    then ``block / conn_bps`` of transfer, all of them together at most ``net_bps`` (the Lambda's network)."""
    return min(net_bps, in_flight * block / (latency + block / conn_bps))


def planned_time(nbytes: float, gets: float, in_flight: float, latency: float, conn_bps: float, net_bps: float) -> float:
    """Seconds to fetch ``nbytes`` in ``gets`` ranges of known position (an MP4's samples), ``in_flight`` at once:
    bound by the network or by the requests' latency, whichever is slower."""
    if gets <= 0:
        return 0.0
    per = latency + nbytes / gets / conn_bps
    return max(nbytes / net_bps, math.ceil(gets / in_flight) * per)


def chunk_count(frames: int, workers: int, ctx: int) -> int:
    """Chunks one Lambda splits its segment into (the engine's rule: ``redactor.chunking.split_chunks``)."""
    from redactor.chunking import most_chunks

    return min(max(1, workers), most_chunks(frames, ctx))


def model(m: dict, a: dict, memory_mb: float, concurrency: int, duration_s: float) -> dict:
    """Wall time (s) by stage and cost (USD) by service of one video of ``duration_s`` seconds.

    ``m``: measured costs on this CPU: plan_core_s_per_frame, redact_core_s_per_frame, context_fraction (cost
    of a context frame — decoded and detected, not blurred or encoded — relative to a whole frame),
    worker_fixed_core_s (model load per worker process), stitch_core_s_per_frame, plan_fixed_core_s and
    stitch_fixed_core_s (per video), ctx_frames, min_chunk_frames.
    ``a``: the assumptions (``resolve``)."""
    fps, g = a["fps"], a["graviton_factor"]
    frames = round(duration_s * fps)
    seg_s, seg_choice = planned_segment_seconds(duration_s, a, concurrency)
    segments = segment_count(duration_s, seg_s, fps)
    seg_frames = min(frames, round(seg_s * fps))
    ctx = int(m["ctx_frames"])
    src_bps, out_bps = a["source_mbit_s"] * 1e6 / 8, a["output_mbit_s"] * 1e6 / 8
    mb = 1e6
    rd, wr = a["s3_read_mbps"] * mb, a["s3_write_mbps"] * mb

    # ---- redact: one (middle, i.e. largest) segment on one Lambda
    vcpus = vcpus_for(memory_mb)
    cpu_share = min(vcpus, memory_mb / a["mb_per_vcpu"])
    chunks = chunk_count(seg_frames, vcpus, ctx)
    context = (2 * ctx if segments > 1 else 0) + 2 * ctx * (chunks - 1)  # frames decoded+detected, not output
    work = (seg_frames * m["redact_core_s_per_frame"] + context * m["redact_core_s_per_frame"] * m["context_fraction"]
            + chunks * m["worker_fixed_core_s"]) * g  # Graviton core-seconds
    parallel = min(chunks, cpu_share) * (a["parallel_efficiency"] if chunks > 1 else 1.0)
    seg_read = (seg_frames + context + a["gop_s"] * fps) / fps * src_bps  # incl. decoding from the keyframe before
    seg_write = seg_frames / fps * out_bps
    seg_compute = work / parallel
    lat = a["s3_latency_s"]
    blocks = (a["min_block_kib"] * 1024, a["max_block_mib"] * 2 ** 20)
    worker_gets = 3 + seq_gets(seg_read / chunks, *blocks)  # HEAD, the index, its byte range (workers in parallel)
    seg_io = worker_gets * lat + seg_read / chunks / rd + seg_write / wr + 4 * lat  # + source info GET, 3 PUTs
    seg_wall = seg_compute + seg_io + a["invoke_overhead_s"]
    waves = math.ceil(segments / concurrency)
    containers = min(concurrency, segments)
    map_wall = a["map_start_s"] + a["cold_start_redact_s"] + waves * seg_wall

    # ---- plan: one pass over the upload (demux) on one core; the concurrent read-ahead fetches while the
    # demuxer works, so the slower of the two bounds it
    src_bytes, out_bytes = duration_s * src_bps, duration_s * out_bps
    plan_compute = (m.get("plan_fixed_core_s", 0.0) + frames * m["plan_core_s_per_frame"]) * g
    mib = 2 ** 20
    net = a["lambda_net_mbps"] * mb
    sblock = a["stream_block_mib"] * mib
    stream_rate = concurrent_rate(a["stream_ahead"], sblock, lat, rd, net)  # one streaming reader
    indexed = a["indexed_reads"] >= 0.5
    ramp = seq_gets(2 * blocks[1], *blocks)  # the small blocks before a read streams
    if indexed:  # the keyframes' samples, planned_ahead GETs at once (+ the index, twice: the first frame's open)
        plan_fetch = src_bytes * a["plan_read_fraction"]
        plan_gets = 2 * ramp + math.ceil(duration_s / a["gop_s"])
        plan_io = planned_time(plan_fetch, plan_gets, a["planned_ahead"], lat, rd, net) + 3 * lat
    else:
        plan_fetch = src_bytes * max(1.0, a["plan_read_fraction"])
        plan_gets = 1 + math.ceil(plan_fetch / mib * a["plan_requests_per_mib"])
        plan_io = plan_fetch / stream_rate + (1 + ramp + 3) * lat  # HEAD, the ramp; plan.json, manifest, source PUTs
    plan_wall = a["cold_start_small_s"] + max(plan_compute, plan_io) + 4 * lat
    # ---- stitch: the records and sidecars, 2 GETs per segment on collect_threads threads, the parts' sizes from
    # a listing; then the remux, with the parts prefetched and the upload's audio read ahead concurrently (both
    # fetch while the remux works: the slower bounds it, and they share the network); the report; then the
    # output's concurrent multipart upload
    part_bytes = seg_frames / fps * out_bps
    part_gets = math.ceil(part_bytes / sblock) + a["part_gets_extra"]
    if indexed and a["audio_chunk_s"] * src_bps > a["planned_gap_kib"] * 1024:
        # the audio samples: a GET per chunk, planned_ahead at once
        src_fetch = src_bytes * a["stitch_source_read_fraction"]
        src_gets = ramp + math.ceil(duration_s / a["audio_chunk_s"])
        src_read_s = planned_time(src_fetch, src_gets, a["planned_ahead"], lat, rd, net)
    else:
        src_fetch = src_bytes * max(1.0, a["stitch_source_read_fraction"])
        src_gets = 1 + math.ceil(src_fetch / mib * a["stitch_source_requests_per_mib"])
        src_read_s = src_fetch / stream_rate
    lists = 2 * math.ceil(segments / 1000)
    collect_s = (1 + lists) * lat + math.ceil(segments / a["collect_threads"]) * 2 * lat  # + the plan GET
    # the parts' prefetcher and the source's reader fetch side by side, sharing the network
    parts_read_s = segments * part_bytes / stream_rate
    remux_io = max(parts_read_s, src_read_s, (segments * part_bytes + src_fetch) / net) + (2 + ramp) * lat
    remux_compute = (m.get("stitch_fixed_core_s", 0.0) + frames * m["stitch_core_s_per_frame"]
                     + segments * m.get("stitch_core_s_per_part", 0.0)) * g
    upart = a["upload_part_mib"] * mib
    up_rate = concurrent_rate(a["upload_in_flight"], upart, lat, wr, net)
    upload_s = out_bytes / up_rate + 2 * lat  # + create and complete
    stitch_requests = (2 * segments + lists + 1 + segments * part_gets + src_gets
                       + math.ceil(out_bytes / upart) + 2 + 2 + 2)  # + upload, reports, failure record check, delete
    stitch_compute = remux_compute + a["stitch_report_s"] * g
    stitch_io = collect_s + remux_io + upload_s
    stitch_wall = (a["cold_start_small_s"] + collect_s + max(remux_compute, remux_io) + a["stitch_report_s"] * g
                   + upload_s + 4 * lat)
    start_wall = a["cold_start_small_s"] + 0.2
    stages = {"start": start_wall, "plan": plan_wall, "map": map_wall, "stitch": stitch_wall}
    wall = sum(stages.values())
    bound = max(("plan", "map", "stitch"), key=lambda k: stages[k])

    # ---- cost
    gb = lambda mem: mem / 1024.0  # noqa: E731  (Lambda bills MB / 1024 as GB)
    eph_gb = max(0.0, a["ephemeral_mb"] - 512) / 1024.0
    init = a["init_billed"]
    redact_s = segments * seg_wall + containers * a["cold_start_redact_s"] * init
    plan_s = plan_wall - a["cold_start_small_s"] * (1 - init)
    stitch_s = stitch_wall - a["cold_start_small_s"] * (1 - init)
    start_s = start_wall - a["cold_start_small_s"] * (1 - init)
    lam = {"redact": redact_s * gb(memory_mb), "plan": plan_s * gb(a["plan_memory_mb"]),
           "stitch": stitch_s * gb(a["stitch_memory_mb"]), "start": start_s * gb(a["small_memory_mb"])}
    lambda_gb_s = sum(lam.values())
    eph_gb_s = (redact_s + plan_s + stitch_s) * eph_gb
    part = a["multipart_mib"] * 2 ** 20
    out_parts = math.ceil(out_bytes / upart)
    gets = (plan_gets + 3  # plan (+ the output check's index)
            + segments * (worker_gets * chunks + 1)  # redact: each worker's HEAD, index, range; the source info
            + 1  # the Map's ItemReader
            + stitch_requests - out_parts - 2 - 2 - lists)  # stitch's GETs and HEADs
    puts = (3 + segments * (3 + max(0, math.ceil(seg_write / part)) + (2 if seg_write > part else 0))
            + out_parts + 2 + 2 + lists + math.ceil(3 * segments / 1000))  # + reports, LISTs, deletes
    cost = {
        "lambda_duration": lambda_gb_s * a["lambda_gb_s_usd"],
        "lambda_ephemeral": eph_gb_s * a["ephemeral_gb_s_usd"],
        "lambda_requests": (segments + 3) * a["lambda_request_usd"],
        "step_functions": (a["sfn_parent_transitions"] + a["sfn_transitions_per_segment"] * segments)
        * a["sfn_transition_usd"],
        "s3_requests": gets * a["s3_get_usd"] + puts * a["s3_put_usd"],
    }
    total = sum(cost.values())
    minutes = duration_s / 60.0
    return {
        "memory_mb": memory_mb, "concurrency": concurrency, "duration_s": duration_s, "frames": frames,
        "segments": segments, "segment_frames": seg_frames, "vcpus": vcpus, "cpu_share_vcpus": round(cpu_share, 3),
        "chunks_per_segment": chunks, "context_frames_per_segment": context, "waves": waves,
        "segment_seconds": seg_s, "segment_choice": seg_choice,
        "containers": containers, "segment_wall_s": seg_wall, "segment_compute_s": seg_compute,
        "segment_io_s": seg_io, "stages_s": stages, "wall_s": wall, "bound_by": bound,
        "lambda_gb_s": lam, "redact_cold_gb_s": containers * a["cold_start_redact_s"] * init * gb(memory_mb),
        "cost_usd": cost, "cost_total_usd": total, "cost_per_min_usd": total / minutes,
        "s3_gets": gets, "s3_puts": puts, "stitch_requests": stitch_requests, "stitch_io_s": stitch_io,
        "plan_io_s": plan_io, "plan_compute_s": plan_compute, "stitch_parts": {
            "collect_s": collect_s, "remux_io_s": remux_io, "remux_compute_s": remux_compute, "upload_s": upload_s,
            "report_s": a["stitch_report_s"] * g},
        "stitch_compute_s": stitch_compute, "read_rate_mb_s": stream_rate / mb, "upload_rate_mb_s": up_rate / mb,
    }


LIVE_CHUNKS = (2.0, 10.0, 60.0, 300.0, 600.0)  # chunk lengths (s): a live uploader's 2-10 s, dashcams' loop files
LIVE_TARGET_S = 20.0  # a 10 s 1080p30 chunk listed in the playlist within 20 s of its upload (3008 MB)
ACCOUNT_CONCURRENCY = 10  # concurrent executions a new account has (every function of the account together)


def live_deployed() -> dict:
    """What the live stack deploys (stacks/live.py, redactor/live): the fan-out width, the chunk limit, the
    timeout, the planner's segment length for chunks and the fan-out's attempts and backoff."""
    from redactor.live.chunk import ENGINE_SEGMENT_SECONDS
    from redactor.live.fanout import FanOut
    from stacks import live
    return {"width": live.FANOUT_WIDTH, "max_chunk_s": live.MAX_CHUNK_SECONDS, "timeout_s": live.TIMEOUT_SECONDS,
            "segment_s": ENGINE_SEGMENT_SECONDS,
            "attempts": FanOut.attempts, "backoff_s": FanOut.backoff}


def live_segments(chunk_s: float, segment_s: float) -> list[float]:
    """The planner's segments of a chunk (redactor/probe.py ``plan``): a cut every ``segment_s``, a tail shorter
    than a quarter of that joins the segment before it (keyframes every gop_s <= segment_s / 2: cuts on time)."""
    out, t = [], 0.0
    while chunk_s - t - segment_s >= segment_s / 4:
        out.append(segment_s)
        t += segment_s
    return out + [chunk_s - t]


def pool_compute(m: dict, a: dict, memory_mb: float, seconds: float) -> float:
    """Wall seconds of one function's process pool redacting ``seconds`` of 1080p30 as one segment (the
    engine's chunk split over its cores, the model loaded once per worker)."""
    frames = round(seconds * a["fps"])
    vcpus = vcpus_for(memory_mb)
    cpu_share = min(vcpus, memory_mb / a["mb_per_vcpu"])
    ctx = int(m["ctx_frames"])
    chunks = chunk_count(frames, vcpus, ctx)
    context = 2 * ctx * (chunks - 1)
    work = (frames * m["redact_core_s_per_frame"] + context * m["redact_core_s_per_frame"] * m["context_fraction"]
            + chunks * m["worker_fixed_core_s"]) * a["graviton_factor"]
    return work / (min(chunks, cpu_share) * (a["parallel_efficiency"] if chunks > 1 else 1.0))


def live_schedule(here: list[float], there: list[float], width: int) -> tuple[float, int, int]:
    """(makespan s, segments redacted here, invokes at once) of redactor.live.fanout: segment 0 here, threads
    invoking the Redact function take the queue's front, this function its back once free."""
    n = len(here)
    if n < 2 or width < 1:
        return sum(here), n, 0
    threads = [0.0] * min(width, n - 1)
    mine, front, back, busy = here[0], 1, n - 1, 1
    while front <= back:
        k = min(range(len(threads)), key=threads.__getitem__)
        if mine <= threads[k]:
            mine, back, busy = mine + here[back], back - 1, busy + 1
        else:
            threads[k], front = threads[k] + there[front], front + 1
    return max(mine, *threads), busy, len(threads)


def live_model(m: dict, a: dict, memory_mb: float, chunk_s: float, concurrency: int,
               deployed: dict | None = None) -> dict:
    """Upload-to-playlist latency (s) of one live chunk of ``chunk_s`` seconds of 1080p30 as deployed
    (``lambdas/live/handler.py``, ``redactor.live.fanout``): the S3 event, the chunk downloaded and claimed, its
    planned segments redacted side by side (segment 0 by this function's pool, the others by synchronous
    invokes of the Redact function at cdk.json's redact memory, ``width`` at once, each with its staging I/O:
    source facts, ranged reads of its frames, part + sidecar + result written by Redact and read back here),
    the staging deleted, its MPEG-TS segments staged and the playlist's conditional write. ``throttled``: the
    same chunk when every invoke is refused (each segment tried ``attempts`` times, then redacted here).
    Warm containers; the first chunk adds the live function's and a Redact container's cold starts."""
    d = deployed or live_deployed()
    lat, rd, wr = a["s3_latency_s"], a["s3_read_mbps"] * 1e6, a["s3_write_mbps"] * 1e6
    redact_mb = float(stack_defaults()["redact_memory_mb"])
    segs = live_segments(chunk_s, d["segment_s"])
    here = [pool_compute(m, a, memory_mb, s) for s in segs]
    src_b, out_b = (s * a["source_mbit_s"] * 1e6 / 8 for s in segs), [s * a["output_mbit_s"] * 1e6 / 8 for s in segs]
    there = [a["invoke_overhead_s"] + pool_compute(m, a, redact_mb, s)
             + lat + (lat + sb / rd)  # Redact: source.json GET, its frames (ranged GETs, in place)
             + (lat + ob / wr) + 2 * lat  # part, sidecar and result PUTs
             + 3 * lat + ob / rd  # read back here: result, part, sidecar
             for s, sb, ob in zip(segs, src_b, out_b)]
    span, mine, width = live_schedule(here, there, d["width"])
    staging = 3 * lat if width else 0.0  # source.json PUT; the staging listed and deleted
    read = 2 * lat + chunk_s * a["source_mbit_s"] * 1e6 / 8 / rd  # claim + GET
    write = math.ceil(chunk_s / 10.0) * lat + sum(out_b) / wr  # staged HLS segments (PUTs in sequence)
    publish = a["live_publish_requests"] * lat  # playlist GET + conditional PUT (+ a retry's pair, averaged)
    fixed = a["invoke_overhead_s"] + read + write + publish
    handler = fixed + staging + span
    throttled = fixed + (staging + (d["attempts"] - 1) * 1.5 * d["backoff_s"] if width else 0.0) + \
        pool_compute(m, a, memory_mb, chunk_s)
    latency = a["live_event_s"] + handler
    needed = math.ceil(handler / chunk_s)  # invocations of one stream under way at once to keep up
    executions = needed * (1 + width)  # each with its Redact invokes
    gb_s = (fixed + staging + span) * memory_mb / 1024.0 + sum(there[1:len(there) - mine + 1]) * redact_mb / 1024.0
    requests = 1 + (len(segs) - mine)
    cost_min = (gb_s * a["lambda_gb_s_usd"] + requests * a["lambda_request_usd"]) * 60.0 / chunk_s
    return {"memory_mb": memory_mb, "chunk_s": chunk_s, "segments": len(segs), "redacted_here": mine,
            "invokes_at_once": width, "compute_s": span, "io_s": read + write + publish + staging,
            "handler_s": handler, "latency_s": latency, "throttled_latency_s": a["live_event_s"] + throttled,
            "first_chunk_latency_s": latency + 2 * a["cold_start_redact_s"], "concurrent_needed": needed,
            "executions": executions, "keeps_up": executions <= concurrency, "concurrency": concurrency,
            "fits": handler <= d["timeout_s"] and chunk_s <= d["max_chunk_s"],
            "throttled_fits": a["live_event_s"] + throttled <= d["timeout_s"], "cost_per_min_usd": cost_min}


def print_live_table(m: dict, a: dict, mems: list[float], concurrency: int = ACCOUNT_CONCURRENCY) -> list[dict]:
    """The live table: per chunk length and memory, latency from upload to playlist, the same when the Redact
    function is throttled throughout, and the executions one continuous stream uses (of ``concurrency``)."""
    d = live_deployed()
    print()
    print(f"LIVE (MODELLED): one 1080p30 stream, chunk uploaded -> listed in index.m3u8; segments of "
          f"{d['segment_s']:g} s, segment 0 + the queue's back here, {d['width']} Redact invokes at once "
          f"(Redact at {stack_defaults()['redact_memory_mb']} MB); warm functions (first chunk + 2 x "
          f"{a['cold_start_redact_s']:g} s cold starts); chunks up to {d['max_chunk_s']} s")
    print(f"{'live MB':>7} {'chunk s':>7} {'segs':>4} {'here':>4} {'invokes':>7} {'redact s':>8} {'s3 s':>5} "
          f"{'latency s':>9} {'1st s':>6} {'throttled s':>11} {'executions':>10} {'keeps up':>8} {'$/video-min':>11}")
    rows = []
    for mem in mems:
        for chunk_s in LIVE_CHUNKS:
            r = live_model(m, a, mem, chunk_s, concurrency, d)
            rows.append(r)
            late = "" if r["throttled_fits"] else "!"
            print(f"{mem:7.0f} {chunk_s:7g} {r['segments']:4d} {r['redacted_here']:4d} {r['invokes_at_once']:7d} "
                  f"{r['compute_s']:8.1f} {r['io_s']:5.2f} {r['latency_s']:9.1f} {r['first_chunk_latency_s']:6.1f} "
                  f"{r['throttled_latency_s']:10.1f}{late or ' '} {r['executions']:10d} "
                  f"{'yes' if r['keeps_up'] else 'NO':>8} {fmt_usd(r['cost_per_min_usd']):>11}")
    ten = next((r for r in rows if r["memory_mb"] == 3008 and r["chunk_s"] == 10.0), None)
    if ten is not None:
        ok = ten["latency_s"] <= LIVE_TARGET_S
        print(f"TARGET live @ 3008 MB: a 10 s 1080p30 chunk listed {ten['latency_s']:.1f} s after its upload vs "
              f"<= {LIVE_TARGET_S:g} s -> {'PASS' if ok else 'MISS'} ({ten['segments']} segments, "
              f"{ten['redacted_here']} here, {ten['invokes_at_once']} Redact invokes at once; "
              f"{ten['throttled_latency_s']:.1f} s when every invoke is throttled); a continuous stream uses "
              f"{ten['executions']} execution(s) at once of the {concurrency} a new account has -> "
              f"{'PASS' if ten['keeps_up'] else 'MISS'}")
    print("columns: here = segments the live function redacts itself; invokes = Redact invokes at once; "
          "throttled = every invoke refused, all redacted here ('!': beyond the function's timeout); executions = "
          "the stream's live invocations at once (latency / chunk length, rounded up) x (1 + invokes)")
    return rows


def break_even(m: dict, a: dict, memory_mb: float, concurrency: int = 1000,
               target: float = TARGET_COST_PER_MIN) -> float:
    """The redact per-frame core-seconds (on this CPU) at which 1 h of 1080p costs ``target`` per minute at
    ``memory_mb`` (everything else as modelled); bisection, cost grows with it."""
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        c = model(dict(m, redact_core_s_per_frame=mid), a, memory_mb, concurrency, 3600.0)["cost_per_min_usd"]
        lo, hi = (mid, hi) if c <= target else (lo, mid)
    return lo


# ------------------------------------------------------------------------------------------------ measurement
def copy_shifted(src: str, dst: str, repeats, span, video_only: bool = False) -> None:
    """Stream-copy ``src`` into ``dst`` (MP4) once per repeat r in ``repeats``, every timestamp shifted by
    r x ``span`` (a Fraction of seconds: the clip's video length). Audio packets are kept only inside [0, span)
    so repeats do not overlap. No decoding: a long real 1080p file (or a part placed later in the video) for
    the price of copying packets, to measure plan's and stitch's per-frame cost apart from their fixed cost."""
    import av
    with av.open(dst, "w", format="mp4") as out:
        outs = {}
        for r in repeats:
            with av.open(src) as inp:
                streams = [st for st in inp.streams if st.type == "video" or (st.type == "audio" and not video_only)]
                if not outs:
                    for st in streams:
                        o = out.add_stream_from_template(st)
                        o.time_base = st.time_base
                        outs[st.index] = o
                for pkt in inp.demux(streams):
                    if pkt.size == 0:
                        continue
                    tb = pkt.time_base
                    shift = r * span / tb
                    if shift.denominator != 1:
                        raise ValueError(f"{src}: a shift of {r * span} s is not a whole number of {tb} ticks")
                    if pkt.stream.type == "audio" and (pkt.pts is None or pkt.pts < 0
                                                       or (pkt.pts + (pkt.duration or 0)) * tb > span):
                        continue
                    if pkt.pts is not None:
                        pkt.pts += int(shift)
                    if pkt.dts is not None:
                        pkt.dts += int(shift)
                    pkt.stream = outs[pkt.stream.index]
                    out.mux(pkt)


def remux_costs(src: str, short_plan, short_part: str, short_plan_cpu: float, short_stitch_cpu: float,
                work: Path, repeats: int, cfg) -> dict:
    """Plan's and stitch's core-seconds per frame as the slope between the clip and the clip repeated
    ``repeats`` times (stream copies; each repeat one planned segment, its part the clip's real redacted part
    shifted in time), and their fixed cost per video as the rest. Stitch also runs on the repeated clip planned
    as ONE segment with ONE part (the parts copied into one): the difference is its cost per part (opening a
    part), apart from its cost per frame."""
    from fractions import Fraction

    from redactor import Config, plan, stitch
    from redactor.probe import parse_tb
    from redactor.records import SegmentResult

    info = short_plan.source
    span = (Fraction(info.end_pts) - info.start_pts) * parse_tb(info.time_base)
    long_src = str(work / "long.mp4")
    copy_shifted(src, long_src, range(repeats), span)
    cfg_long = Config.from_dict(dict(cfg.to_dict(), segment_seconds=float(span)))
    c0 = _cpu()
    p = plan(long_src, cfg_long)
    plan_cpu = _cpu() - c0
    if len(p.segments) != repeats or any(sg.frames != info.frame_count for sg in p.segments):
        raise RuntimeError(f"the repeated clip planned as {[sg.frames for sg in p.segments]}, expected {repeats} "
                           f"segments of {info.frame_count} frames")
    parts = []
    for sg in p.segments:
        part = str(work / f"long-part-{sg.index:05d}.mp4")
        copy_shifted(short_part, part, range(sg.index, sg.index + 1), span, video_only=True)
        parts.append(SegmentResult(index=sg.index, part=part, detections="", frames=sg.frames,
                                   first_pts=sg.start_pts, last_pts=sg.frame_pts[sg.context_before + sg.frames - 1],
                                   detected_frames=0, faces=0, redacted_frames=0, workers=1, wall_seconds=0.0))
    c0 = _cpu()
    stitch(p, parts, str(work / "long-out.mp4"), cfg_long)
    stitch_cpu = _cpu() - c0
    # the same video as one segment, one part
    p1 = plan(long_src, Config.from_dict(dict(cfg.to_dict(), segment_seconds=float(span) * (repeats + 1))))
    one = str(work / "long-part-one.mp4")
    copy_shifted(short_part, one, range(repeats), span, video_only=True)
    sg = p1.segments[0]
    c0 = _cpu()
    stitch(p1, [SegmentResult(index=0, part=one, detections="", frames=sg.frames, first_pts=sg.start_pts,
                              last_pts=sg.frame_pts[sg.context_before + sg.frames - 1], detected_frames=0, faces=0,
                              redacted_frames=0, workers=1, wall_seconds=0.0)], str(work / "long-out-1.mp4"), cfg_long)
    stitch_one_cpu = _cpu() - c0
    n_short, n_long = info.frame_count, p.source.frame_count
    out = {"repeats": repeats, "long_frames": n_long, "plan_cpu_s_long": plan_cpu, "stitch_cpu_s_long": stitch_cpu,
           "stitch_cpu_s_long_one_part": stitch_one_cpu}
    out["reads"] = s3_reads(long_src, parts, cfg_long, work)
    per = max(0.0, (plan_cpu - short_plan_cpu) / (n_long - n_short))
    out.update(plan_core_s_per_frame=per, plan_fixed_core_s=max(0.0, short_plan_cpu - per * n_short))
    per_part = max(0.0, (stitch_cpu - stitch_one_cpu) / (repeats - 1))
    per = max(0.0, (stitch_one_cpu - short_stitch_cpu) / (n_long - n_short))
    out.update(stitch_core_s_per_frame=per, stitch_core_s_per_part=per_part,
               stitch_fixed_core_s=max(0.0, short_stitch_cpu - per * n_short - per_part))
    return out


class _LocalS3:
    """An S3 client over local files (``s3://local/<absolute path>``) for the engine's readers, counting per
    file the HEADs, the GETs and the bytes they fetch (thread-safe: the readers fetch from threads)."""

    def __init__(self):
        import threading
        self.lock = threading.Lock()
        self.seen: dict[str, dict] = {}

    def _tally(self, key: str) -> dict:
        return self.seen.setdefault("/" + key, {"opens": 0, "gets": 0, "bytes": 0})

    def head_object(self, Bucket, Key, **kw):  # noqa: N803 (boto3's names)
        with self.lock:
            self._tally(Key)["opens"] += 1
        return {"ContentLength": os.path.getsize("/" + Key)}

    def get_object(self, Bucket, Key, Range, **kw):  # noqa: N803
        import io
        start, end = (int(x) for x in Range.split("=")[1].split("-"))
        fd = os.open("/" + Key, os.O_RDONLY)
        try:
            data = os.pread(fd, end - start + 1, start)
        finally:
            os.close(fd)
        with self.lock:
            t = self._tally(Key)
            t["gets"] += 1
            t["bytes"] += len(data)
        return {"Body": io.BytesIO(data)}

    def take(self, path: str) -> dict:
        with self.lock:
            t = self.seen.pop(path, {"opens": 0, "gets": 0, "bytes": 0})
        return dict(t, size=os.path.getsize(path))


def s3_reads(src: str, parts: list, cfg, work: Path) -> dict:
    """What Plan and Stitch fetch when their inputs are s3:// objects: the engine's own readers
    (redactor/remote.py: read-ahead, block cache, concurrent read-ahead, the parts' prefetcher) over the local
    files through a counting stand-in for the S3 client, per object; HEADs are counted as opens. Stitch is
    given the parts' sizes, as the Stitch Lambda gives them (from one listing). Run after the CPU measurements."""
    import dataclasses

    from redactor import plan, remote
    from redactor.remux import stitch

    fake = _LocalS3()
    real_client = remote._client
    src_path = str(Path(src).resolve())
    url = "s3://local" + src_path
    remote._client = lambda: fake
    try:
        p = plan(url, cfg)
        plan_reads = fake.take(src_path)
        s3_parts = [dataclasses.replace(r, part="s3://local" + str(Path(r.part).resolve())) for r in parts]
        stitch(p, s3_parts, str(work / "long-out-s3.mp4"), cfg,
               part_sizes=[os.path.getsize(r.part) for r in parts])
        src_reads = fake.take(src_path)
        part_reads = [fake.take(str(Path(r.part).resolve())) for r in parts]
    finally:
        remote._client = real_client
    mib = 2 ** 20
    return {
        "plan": plan_reads, "stitch_source": src_reads, "stitch_parts": part_reads,
        "plan_read_fraction": plan_reads["bytes"] / plan_reads["size"],
        "plan_requests_per_mib": plan_reads["gets"] / (plan_reads["bytes"] / mib),
        "stitch_source_read_fraction": src_reads["bytes"] / src_reads["size"],
        "stitch_source_requests_per_mib": src_reads["gets"] / (src_reads["bytes"] / mib),
        "part_opens": sum(t["opens"] for t in part_reads) / len(part_reads),
        "part_gets_extra": max(0.0, sum(t["gets"] + t["opens"] - math.ceil(t["size"] / remote.STREAM_BLOCK)
                                        for t in part_reads) / len(part_reads)),
    }


# measured here and used by the model (the read fractions are printed but not used: the generated clip is not
# a camera's file: its keyframes weigh more, and FFmpeg's muxer chunks its audio every video frame)
MEASURED_ASSUMPTIONS = ("plan_requests_per_mib", "stitch_source_requests_per_mib", "part_gets_extra")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def measure(seconds: float, settings: dict, repeats: int = 10) -> dict:
    """Per-frame core-seconds of plan, redact and stitch on ONE core of this machine, workers=1."""
    core = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {core})  # this process and every worker it forks: one core
    import av  # noqa: F401  (imports before any clock starts)
    import cv2  # noqa: F401
    import numpy  # noqa: F401
    import redactor.blur  # noqa: F401
    import redactor.probe  # noqa: F401
    import redactor.remux  # noqa: F401
    import redactor.segment  # noqa: F401
    from redactor import Config, plan, redact_segment, stitch
    from redactor.detectors import make_detector
    from redactor.chunking import MIN_CHUNK_FRAMES

    common.ensure_model()
    cfg = Config.from_dict(dict(settings, workers=1, segment_seconds=max(seconds * 2, 10.0)))
    src, gt = common.clip("cloud", width=1920, height=1080, fps=30, seconds=seconds, faces=4,
                          face_size=(40, 160), audio="aac")
    out = {"clip": Path(src).name, "clip_bytes": Path(src).stat().st_size, "clip_frames": gt["frames"],
           "core": core, "detector": cfg.detector, "inference": cfg.inference, "settings": settings}
    busy0 = common.cpu_busy_seconds()
    cpu0 = _cpu()
    t_all = time.perf_counter()

    def timed(fn):
        c0, w0 = _cpu(), time.perf_counter()
        r = fn()
        return r, _cpu() - c0, time.perf_counter() - w0

    p, cpu, wall = timed(lambda: plan(src, cfg))
    frames = sum(s.frames for s in p.segments)
    out.update(frames=frames, plan_cpu_s=cpu, plan_wall_s=wall)
    det, cpu, wall = timed(lambda: make_detector(cfg, p.source))
    out.update(worker_fixed_core_s=cpu, detector_load_wall_s=wall, detector_class=type(det).__name__)
    del det
    with tempfile.TemporaryDirectory(prefix="cloud-") as work:
        r, cpu, wall = timed(lambda: redact_segment(src, p.segments[0], cfg, work, source_info=p.source))
        out.update(redact_cpu_s=cpu, redact_wall_s=wall,
                   redact_core_s_per_frame=max(0.0, cpu - out["worker_fixed_core_s"]) / frames,
                   stage_seconds=r.stage_seconds, faces=r.faces, redacted_frames=r.redacted_frames)
        dst = str(Path(work) / "out.mp4")
        s, cpu, wall = timed(lambda: stitch(p, [r], dst, cfg))
        out.update(stitch_cpu_s=cpu, stitch_wall_s=wall, output_bytes=Path(dst).stat().st_size)
        # per frame vs per video: the same stages on the clip repeated (stream copies, no decoding)
        out["remux"] = remux_costs(src, p, r.part, out["plan_cpu_s"], out["stitch_cpu_s"], Path(work), repeats, cfg)
        for k in ("plan_core_s_per_frame", "plan_fixed_core_s", "stitch_core_s_per_frame", "stitch_fixed_core_s",
                  "stitch_core_s_per_part"):
            out[k] = out["remux"][k]
    st = r.stage_seconds
    total_stage = sum(st.values()) or 1.0
    # a context frame is decoded and detected (coarse samples, tracks, one fine pass per cut), never blurred or
    # encoded: its share of a frame's cost, from the worker's own stage timers (a ratio, so load-independent)
    ctx_share = sum(v for k, v in st.items() if k not in ("redact", "encode")) / total_stage
    wall_all = time.perf_counter() - t_all
    busy = common.cpu_busy_seconds() - busy0
    own = _cpu() - cpu0
    out.update(context_fraction=ctx_share, ctx_frames=cfg.schedule_for(p.source.fps).context,
               min_chunk_frames=MIN_CHUNK_FRAMES, measure_wall_s=wall_all,
               foreign_load_cores=round(max(0.0, busy - own) / wall_all, 2) if wall_all > 0 else None,
               source_mbit_s=out["clip_bytes"] * 8 / seconds / 1e6, output_mbit_s=out["output_bytes"] * 8 / seconds / 1e6,
               loadavg=os.getloadavg())
    # the planner check: the engine's own plan of this clip at 1 s segments vs segment_count()
    p1 = plan(src, Config(segment_seconds=1.0))
    out["planner_check"] = {"segment_seconds": 1.0, "engine": len(p1.segments),
                            "model": segment_count(p1.source.duration, 1.0, p1.source.fps)}
    return out


# ------------------------------------------------------------------------------------------------ output
def print_assumptions(a: dict, measured: set = frozenset()) -> None:
    print("ASSUMPTIONS (every one a flag: --name-with-dashes VALUE; 'ASSUMPTION' = not measured, not published)")
    for k, (default, unit, why) in ASSUMPTIONS.items():
        v = a[k]
        flag = "--" + k.replace("_", "-")
        if k in measured:
            mark = f" [MEASURED here: {v:.3g}; default {default:g}]"
        else:
            mark = "" if v == default or default == 0.0 else f" (default {default:g})"
        print(f"  {flag:34s} {v:<12.6g} {unit:14s} {why}{mark}")


def fmt_usd(x: float) -> str:
    return f"${x:.4f}" if x >= 0.0001 else f"${x:.6f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="measurement clip length (default 4)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="engine setting for the measurement (Config), e.g. detector=yunet; repeatable")
    ap.add_argument("--per-frame-core-s", type=float, default=None,
                    help="skip the measurement: redact core-seconds per frame on this CPU (plan/stitch/fixed "
                         "costs then come from --plan-core-s, --stitch-core-s, --worker-fixed-core-s)")
    ap.add_argument("--plan-core-s", type=float, default=0.00001,
                    help="with --per-frame-core-s: plan per frame (default: measured, below resolution)")
    ap.add_argument("--stitch-core-s", type=float, default=0.00006,
                    help="with --per-frame-core-s: stitch per frame (default: measured, 0.062 ms)")
    ap.add_argument("--stitch-part-core-s", type=float, default=0.0, help="with --per-frame-core-s: stitch per part")
    ap.add_argument("--plan-fixed-core-s", type=float, default=0.1, help="with --per-frame-core-s: plan per video")
    ap.add_argument("--stitch-fixed-core-s", type=float, default=0.1, help="with --per-frame-core-s: stitch per video")
    ap.add_argument("--repeats", type=int, default=10,
                    help="plan/stitch slope: the clip repeated this many times by stream copy (default 10)")
    ap.add_argument("--worker-fixed-core-s", type=float, default=0.5,
                    help="with --per-frame-core-s: model load per worker")
    ap.add_argument("--context-fraction", type=float, default=None,
                    help="cost of a context frame relative to a frame (default: measured; 0.6 with --per-frame-core-s)")
    ap.add_argument("--memories", default=",".join(map(str, MEMORIES)))
    ap.add_argument("--concurrencies", default=",".join(map(str, CONCURRENCIES)))
    for k, (default, unit, why) in ASSUMPTIONS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=float, default=None, help=f"[{unit}] {why} (default {default:g})".replace("%", "%%"))
    args = ap.parse_args(argv)
    a = resolve({k: getattr(args, k) for k in ASSUMPTIONS})
    settings = {}
    for s in args.set:
        k, _, v = s.partition("=")
        settings[k.strip()] = v.strip()
    from redactor import Config
    from redactor.chunking import MIN_CHUNK_FRAMES
    cfg = Config.from_dict(settings)
    info = common.machine_info()

    measured_here: set[str] = set()
    if args.per_frame_core_s is not None:
        m = {"source": "given (--per-frame-core-s), not measured", "detector": cfg.detector,
             "redact_core_s_per_frame": args.per_frame_core_s, "plan_core_s_per_frame": args.plan_core_s,
             "stitch_core_s_per_frame": args.stitch_core_s, "stitch_core_s_per_part": args.stitch_part_core_s,
             "worker_fixed_core_s": args.worker_fixed_core_s,
             "plan_fixed_core_s": args.plan_fixed_core_s, "stitch_fixed_core_s": args.stitch_fixed_core_s,
             "context_fraction": 0.6 if args.context_fraction is None else args.context_fraction,
             "ctx_frames": cfg.schedule_for(a["fps"]).context, "min_chunk_frames": MIN_CHUNK_FRAMES}
    else:
        common.log(f"[cloud] measuring {args.seconds:g} s of 1080p30 on one core (detector {cfg.detector}) ...")
        m = measure(args.seconds, settings, args.repeats)
        m["source"] = "measured"
        for k in MEASURED_ASSUMPTIONS:  # measured here, unless given as a flag
            if getattr(args, k) is None:
                a[k] = m["remux"]["reads"][k]
                measured_here.add(k)
        if args.context_fraction is not None:
            m["context_fraction"] = args.context_fraction

    print("MODELLED cloud cost and wall time (a model built on per-frame costs measured on this machine; "
          "no AWS account was used)")
    print(f"machine: {info.get('usable_cores')} cores, load average {tuple(round(x, 1) for x in os.getloadavg())}; "
          f"git {info.get('git_head')}")
    if m["source"] == "measured":
        print(f"MEASURED on one core (core {m['core']}), workers=1, {m['clip']} ({m['frames']} frames, "
              f"{m['source_mbit_s']:.1f} Mbit/s, 4 faces 40-160 px, AAC): detector {m['detector']} "
              f"({m['detector_class']}, inference {m['inference']}), settings {m['settings'] or 'Config() defaults'}")
        rx = m["remux"]
        print(f"  plan    {m['plan_cpu_s']:.2f} core-s ({m['plan_wall_s']:.2f} s wall); {rx['plan_cpu_s_long']:.2f} "
              f"core-s for the clip x{rx['repeats']} ({rx['long_frames']} frames, stream copies): "
              f"{m['plan_core_s_per_frame'] * 1000:.3f} ms/frame + {m['plan_fixed_core_s']:.2f} core-s per video"
              + (" (per frame: below this measurement's resolution)" if m["plan_core_s_per_frame"] * rx["long_frames"]
                 < 0.02 else ""))
        print(f"  model   {m['worker_fixed_core_s']:.2f} core-s per worker (detector construction, "
              f"{m['detector_load_wall_s']:.2f} s wall)")
        print(f"  redact  {m['redact_cpu_s']:.2f} core-s ({m['redact_wall_s']:.2f} s wall) = "
              f"{m['redact_core_s_per_frame'] * 1000:.1f} ms/frame after the model load; stages (s) "
              f"{ {k: round(v, 2) for k, v in m['stage_seconds'].items()} }")
        print(f"  stitch  {m['stitch_cpu_s']:.2f} core-s ({m['stitch_wall_s']:.2f} s wall); {rx['stitch_cpu_s_long']:.2f} "
              f"core-s x{rx['repeats']} in {rx['repeats']} parts, {rx['stitch_cpu_s_long_one_part']:.2f} in one: "
              f"{m['stitch_core_s_per_frame'] * 1000:.3f} ms/frame + {m['stitch_core_s_per_part'] * 1000:.1f} ms/part + "
              f"{m['stitch_fixed_core_s']:.2f} core-s per video (remux; output {m['output_mbit_s']:.1f} Mbit/s)")
        rd_ = rx["reads"]
        print(f"  S3 reads (the engine's RangeReader over the x{rx['repeats']} files, counting): plan fetched "
              f"{rd_['plan_read_fraction']:.2f}x the upload in {rd_['plan']['gets']} GETs; stitch "
              f"{rd_['stitch_source_read_fraction']:.2f}x the upload for its audio in {rd_['stitch_source']['gets']} "
              f"GETs; each part: {rd_['part_opens']:g} HEADs, {rd_['part_gets_extra']:.1f} requests beyond one "
              f"GET per {a['stream_block_mib']:g} MiB")
        print(f"  a context frame costs {m['context_fraction']:.2f} of a frame (decode + detection share of the "
              f"stage timers); context {m['ctx_frames']} frames per side; other processes used "
              f"{m['foreign_load_cores']} cores during the {m['measure_wall_s']:.0f} s measurement"
              + (" [NOISY: CPU times are less affected than wall, but caches are shared]"
                 if (m['foreign_load_cores'] or 0) >= 0.2 else ""))
        pc = m["planner_check"]
        print(f"  planner check: the engine cuts this clip at {pc['segment_seconds']:g} s into {pc['engine']} "
              f"segments, the model's rule gives {pc['model']}"
              + ("" if pc["engine"] == pc["model"] else "  [MISMATCH: the model's segment count is off]"))
    else:
        print(f"GIVEN (not measured): redact {m['redact_core_s_per_frame'] * 1000:.1f} ms/frame, plan "
              f"{m['plan_core_s_per_frame'] * 1000:.2f} ms/frame + {m['plan_fixed_core_s']:g} s, stitch "
              f"{m['stitch_core_s_per_frame'] * 1000:.2f} ms/frame + {m['stitch_core_s_per_part'] * 1000:g} ms/part + "
              f"{m['stitch_fixed_core_s']:g} s, "
              f"model load {m['worker_fixed_core_s']:g} core-s/worker, context fraction {m['context_fraction']:g}; "
              f"detector (for reference) {m['detector']}")
    print_assumptions(a, measured_here)
    ctx = stack_defaults()
    print(f"stack defaults (cdk.json): redact_memory_mb {ctx['redact_memory_mb']}, max_concurrency "
          f"{ctx['max_concurrency']}, segment_seconds {ctx['segment_seconds']}, detector {ctx['detector']}; "
          f"a new account has ~10 concurrent executions (docs/deploy.md): the 10-way rows")

    mems = [float(x) for x in args.memories.split(",")]
    concs = [int(x) for x in args.concurrencies.split(",")]
    rows = []
    print()
    hdr = (f"{'redact MB':>9} {'vCPU':>9} {'Map':>5} {'video':>6} {'segs':>5} {'len s':>5} {'waves':>5} {'seg s':>6} "
           f"{'plan s':>7} {'map s':>7} {'stitch s':>8} {'wall s':>7} {'bound':>6} {'$/video-min':>11} "
           f"{'lambda':>8} {'sfn':>8} {'s3':>8}")
    print(hdr)
    for mem in mems:
        for conc in concs:
            for label, dur in DURATIONS:
                r = model(m, a, mem, conc, dur)
                r["label"] = label
                rows.append(r)
                per_min = 60.0 / dur
                c = r["cost_usd"]
                st = r["stages_s"]
                print(f"{mem:9.0f} {r['vcpus']:>3d} ({r['cpu_share_vcpus']:.2f}) {conc:5d} {label:>6} {r['segments']:5d} "
                      f"{r['segment_seconds']:5.1f} {r['waves']:5d} {r['segment_wall_s']:6.1f} {st['plan']:7.1f} {st['map']:7.1f} "
                      f"{st['stitch']:8.1f} {r['wall_s']:7.1f} {r['bound_by']:>6} {fmt_usd(r['cost_per_min_usd']):>11} "
                      f"{fmt_usd((c['lambda_duration'] + c['lambda_ephemeral'] + c['lambda_requests']) * per_min):>8} "
                      f"{fmt_usd(c['step_functions'] * per_min):>8} {fmt_usd(c['s3_requests'] * per_min):>8}")
        print()
    print(f"note: {max(concs)}-way needs the account's Lambda concurrent executions quota above {max(concs)} (plus "
          f"Plan/Stitch/starter of other uploads); a new account has ~10, so only the 10-way rows run there (the "
          f"stack's default max_concurrency is {ctx['max_concurrency']}: --concurrencies {ctx['max_concurrency']})")
    print("columns: vCPU = cores seen (CPU share in vCPUs); len s = the segment length Plan chooses (segment_seconds, "
          f"or longer, up to segment_max_seconds {a['segment_max_seconds']:g}, where the Map cannot run them all at once); "
          "seg s = one segment's Lambda (compute + S3 + overhead); map s = Map start + one cold start + waves x seg s; $/video-min = all of it per minute of "
          "video (lambda / Step Functions / S3 requests per minute beside it)")

    # targets: cost per video-minute and the 1 h wall time
    print()
    verdicts = {}
    hour = {mem: next(r for r in rows if r["memory_mb"] == mem and r["concurrency"] == max(concs)
                      and r["duration_s"] == 3600.0) for mem in mems}
    for mem, r in hour.items():
        cost_ok = r["cost_per_min_usd"] <= TARGET_COST_PER_MIN
        wall_ok = r["wall_s"] <= TARGET_HOUR_WALL_S
        need = break_even(m, a, mem, max(concs))
        floor = model(dict(m, redact_core_s_per_frame=0.0), a, mem, max(concs), 3600.0)["cost_per_min_usd"]
        need_txt = (f"meeting it needs redact <= {need * 1000:.1f} ms/frame on this core" if floor <= TARGET_COST_PER_MIN
                    else f"out of reach at any per-frame cost: the fixed costs alone (cold starts, model loads, "
                         f"plan, stitch) are {fmt_usd(floor)}/min")
        st = r["stages_s"]
        verdicts[int(mem)] = {"cost_per_min_usd": r["cost_per_min_usd"], "cost_pass": cost_ok, "wall_s": r["wall_s"],
                              "wall_pass": wall_ok, "bound_by": r["bound_by"],
                              "break_even_redact_core_s_per_frame": need if floor <= TARGET_COST_PER_MIN else None,
                              "fixed_cost_floor_per_min_usd": floor}
        print(f"TARGET cost  @ {mem:.0f} MB: {fmt_usd(r['cost_per_min_usd'])} per 1080p video-minute (1 h video) "
              f"vs <= ${TARGET_COST_PER_MIN} -> {'PASS' if cost_ok else 'MISS'}; {need_txt} "
              f"(measured {m['redact_core_s_per_frame'] * 1000:.1f} ms/frame)")
        per_min = a["lambda_gb_s_usd"] / 60.0
        print(f"  1 h at {mem:.0f} MB, {max(concs)}-way, Lambda duration per video-minute: redact "
              f"{fmt_usd(r['lambda_gb_s']['redact'] * per_min)} (of which {r['containers']} cold starts "
              f"{fmt_usd(r['redact_cold_gb_s'] * per_min)}), plan {fmt_usd(r['lambda_gb_s']['plan'] * per_min)}, "
              f"stitch {fmt_usd(r['lambda_gb_s']['stitch'] * per_min)}, start {fmt_usd(r['lambda_gb_s']['start'] * per_min)}")
        print(f"TARGET wall  @ {mem:.0f} MB, {max(concs)}-way: 1 h of 1080p in {r['wall_s']:.0f} s vs <= "
              f"{TARGET_HOUR_WALL_S:.0f} s -> {'PASS' if wall_ok else 'MISS'}; bound by {r['bound_by']} "
              f"(plan {st['plan']:.0f} s, map {st['map']:.0f} s = {r['waves']} wave(s) of {r['segment_wall_s']:.0f} s, "
              f"stitch {st['stitch']:.0f} s)")
        sp = r["stitch_parts"]
        print(f"  stitch {st['stitch']:.0f} s = cold start + collect {sp['collect_s']:.1f} s + remux max(compute "
              f"{sp['remux_compute_s']:.0f} s, parts + audio read {sp['remux_io_s']:.0f} s) + report {sp['report_s']:.1f} s "
              f"+ upload {sp['upload_s']:.0f} s; plan {st['plan']:.0f} s = cold start + max(demux {r['plan_compute_s']:.0f} s, "
              f"read {r['plan_io_s']:.0f} s); reads {r['read_rate_mb_s']:.0f} MB/s per streaming reader, upload "
              f"{r['upload_rate_mb_s']:.0f} MB/s (--lambda-net-mbps {a['lambda_net_mbps']:g})")
    live_rows = print_live_table(m, a, mems)
    result = {"measured": m, "assumptions": a, "assumption_notes": {k: v[2] for k, v in ASSUMPTIONS.items()},
              "stack_defaults": {k: ctx[k] for k in ("redact_memory_mb", "max_concurrency", "segment_seconds",
                                                     "detector", "plan_memory_mb", "stitch_memory_mb")},
              "rows": rows, "live_rows": live_rows, "targets": {"cost_per_min_usd": TARGET_COST_PER_MIN, "hour_wall_s": TARGET_HOUR_WALL_S,
                                        "verdicts": verdicts}, "machine": info}
    out = common.write_result("cloud", result)
    v = verdicts.get(3008) or next(iter(verdicts.values()))
    v10 = verdicts.get(10240) or v
    print(f"wrote {out}")
    print(f"SUMMARY cloud (MODELLED, detector {m['detector']}, graviton factor {a['graviton_factor']:g}): 1 h of 1080p "
          f"costs {fmt_usd(v['cost_per_min_usd'])}/min at 3008 MB, {fmt_usd(v10['cost_per_min_usd'])}/min at 10240 MB "
          f"(target <= ${TARGET_COST_PER_MIN}: {'PASS' if v['cost_pass'] or v10['cost_pass'] else 'MISS'}); "
          f"{max(concs)}-way wall {v['wall_s']:.0f} s / {v10['wall_s']:.0f} s (target <= {TARGET_HOUR_WALL_S:.0f} s: "
          f"{'PASS' if v['wall_pass'] or v10['wall_pass'] else 'MISS'}, bound by {v['bound_by']}/{v10['bound_by']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
