"""Which container a redacted video is written in (no PyAV here: the Lambda starter imports it).

The output keeps the input's container wherever that container can hold the redacted video (H.264, written
by libx264) and the source's audio copied bit-exact, with the source's own timestamps:

    input          output                     why
    .mp4 .m4v      same (MP4)
    .mov           same (QuickTime)
    .mkv           same (Matroska)
    .ts            same (MPEG-TS, 90 kHz timestamps as in the source)
    .mts .m2ts     same (MPEG-TS with 192-byte packets, as AVCHD cameras write it)
    .webm          .mkv appended: clip.webm -> clip.webm.mkv (Matroska). WebM holds only VP8/VP9/AV1, so
                   it cannot hold H.264; Matroska is WebM's parent format and holds its Opus/Vorbis audio
                   and its millisecond timestamps exactly.
    .avi           .mov appended: clip.avi -> clip.avi.mov (QuickTime). AVI stores no timestamps (a reader
                   infers them from the frame count, and for H.264 from the codec's delay), so an AVI
                   written from H.264 does not read back with the source's frame times; QuickTime keeps
                   them exactly (in the source's 1/fps time base) and, unlike MP4, holds AVI's usual PCM
                   audio as well as MP3, MP2, AC-3 and AAC.
    anything else  .mp4 appended (the most widely playable container)

Audio the chosen container cannot hold (e.g. Opus in .mov, ADPCM in .mp4) is refused before any segment is
redacted (``remux.check_output``), unless audio is dropped.
"""
from __future__ import annotations

from pathlib import PurePosixPath

# output suffix -> FFmpeg muxer
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts",
                  ".mts": "mpegts", ".m2ts": "mpegts"}
M2TS_SUFFIXES = (".mts", ".m2ts")  # 192-byte packets (4-byte arrival timestamp + 188-byte TS packet)
# input suffixes whose container cannot hold the output: the suffix appended to the output's name
APPENDED = {".webm": ".mkv", ".avi": ".mov"}
DEFAULT_APPENDED = ".mp4"
WHY_NOT = {".webm": "WebM holds only VP8/VP9/AV1 video, not the H.264 the redactor writes; use .mkv",
           ".avi": "AVI stores no frame timestamps, so the source's cannot be kept exactly; use .mov"}


def output_suffix(input_name: str) -> str:
    """The suffix the redacted output of ``input_name`` ends with (see the table above)."""
    suffix = PurePosixPath(input_name).suffix.lower()
    if suffix in OUTPUT_FORMATS:
        return suffix
    return APPENDED.get(suffix, DEFAULT_APPENDED)


def output_name(input_name: str) -> str:
    """``input_name`` itself when its container is kept, else with the output suffix appended."""
    suffix = PurePosixPath(input_name).suffix.lower()
    return input_name if suffix in OUTPUT_FORMATS else input_name + output_suffix(input_name)


# output suffix -> the Content-Type the redacted video is stored with
CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska",
                 ".ts": "video/mp2t", ".mts": "video/mp2t", ".m2ts": "video/mp2t"}


def content_type(output: str) -> str:
    """The MIME type of a redacted output named ``output`` (its container, by ``output_suffix``)."""
    return CONTENT_TYPES[output_suffix(output)]


def supported_outputs() -> str:
    return ", ".join(sorted(OUTPUT_FORMATS))
