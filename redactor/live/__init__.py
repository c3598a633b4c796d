"""Live mode: a stream's chunks redacted one by one into HLS (docs/live.md).

    from redactor.live import LocalStore, Publisher, LiveSettings, LocalStream, run_directory
    stream = LocalStream(Publisher(LocalStore("out"), LiveSettings()), Config())
    run_directory(stream, "incoming", idle=30)       # out/index.m3u8 + out/seg-*.ts
"""
from .publish import LiveSettings, Publisher
from .run import ChunkOutcome, LocalStream, clean_up, process_chunk, run_directory, run_stream
from .store import LocalStore, S3Store, Store

__all__ = ["LiveSettings", "Publisher", "ChunkOutcome", "LocalStream", "clean_up", "process_chunk",
           "run_directory", "run_stream", "LocalStore", "S3Store", "Store"]
