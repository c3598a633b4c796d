"""Private, yet playable: play a live stream's HLS playlist from the private output bucket.

The output bucket stays private (Block Public Access, no public policy). The live path writes each stream as
``live/<stream>/index.m3u8`` plus its segments beside it (docs/live.md: relative URIs, MPEG-TS segments; an
fMP4 playlist's ``EXT-X-MAP`` init section is handled the same way). A player is given the playlist
through a small local HTTP server (``PlaylistServer``, 127.0.0.1 only) that fetches ``index.m3u8`` from S3 with
the user's own credentials on every request and rewrites every segment URI and ``EXT-X-MAP`` URI into a
presigned GET URL valid for ``expires`` seconds (``rewrite_playlist``, a pure function). The player then fetches
the segments straight from S3. An EVENT playlist is re-fetched by the player every target duration, so every
fetch gets freshly signed URLs for the segments it lists: the URLs can be short-lived (default 5 minutes).

    redactor cloud play cam-1                      # the output bucket from the stack's outputs
    python -m redactor.hls_presign cam-1 --bucket <OutputBucketName>
    # either prints http://127.0.0.1:<port>/cam-1/index.m3u8 : open it with ffplay, VLC, mpv or Safari

Only keys under ``live/<stream>/`` are ever signed: a playlist naming anything else (``../``, another stream,
another bucket) is refused, not signed. Nested playlists (``*.m3u8`` URIs) stay relative, so the player asks the
local server for them too and they are rewritten the same way.

Revoking access: (1) expiry: a URL stops working ``expires`` seconds after it was signed (and never outlives the
credentials that signed it: role sessions' URLs die with the session); stopping the server stops new ones.
(2) the credentials: deactivating the IAM user's access key, or revoking the role's sessions ("Revoke active
sessions" adds a deny on tokens issued before now), invalidates every URL they signed at once. (3) a deny
policy: a bucket-policy statement denying ``s3:GetObject`` on ``live/<stream>/*`` (optionally for one
principal, or with an ``s3:signatureAge`` condition) blocks the URLs immediately, whatever their expiry.
"""
from __future__ import annotations

import argparse
import posixpath
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import unquote, urlsplit

LIVE_PREFIX = "live/"
PLAYLIST = "index.m3u8"
DEFAULT_EXPIRES = 300
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's limit
MPEGURL = "application/vnd.apple.mpegurl"
_URI_ATTR = re.compile(r'URI="([^"]*)"')
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")


class PlaylistError(ValueError):
    """The playlist names something outside the stream's prefix, or a request names no playlist of a stream."""


def resolve(uri: str, playlist_key: str, allowed_prefix: str) -> str | None:
    """The S3 key a relative URI in ``playlist_key`` names (None for an absolute URL or a nested playlist,
    which are left as they are). PlaylistError if the key is outside ``allowed_prefix``."""
    parts = urlsplit(uri)
    if parts.scheme or parts.netloc or uri.startswith("/"):
        if parts.scheme in ("http", "https", "data") and not uri.startswith("/"):
            return None
        raise PlaylistError(f"{uri!r}: only relative URIs (or http/https/data URLs) are played")
    path = unquote(parts.path)
    if path.endswith(".m3u8"):
        return None
    key = posixpath.normpath(posixpath.join(posixpath.dirname(playlist_key), path))
    if not key.startswith(allowed_prefix) or key == allowed_prefix.rstrip("/"):
        raise PlaylistError(f"{uri!r} in {playlist_key} is outside {allowed_prefix}: not signed")
    return key


def rewrite_playlist(text: str, playlist_key: str, sign: Callable[[str], str], allowed_prefix: str) -> str:
    """The playlist with every segment URI line and every ``URI="..."`` attribute (``EXT-X-MAP``, ``EXT-X-KEY``,
    ...) naming an object under ``allowed_prefix`` replaced by ``sign(key)``; everything else unchanged."""
    def one(uri: str) -> str:
        key = resolve(uri, playlist_key, allowed_prefix)
        return uri if key is None else sign(key)

    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append(line)
        elif stripped.startswith("#EXT"):
            out.append(_URI_ATTR.sub(lambda m: f'URI="{one(m.group(1))}"', line))
        elif stripped.startswith("#"):  # a comment (e.g. the live writer's #REDACTOR- state lines)
            out.append(line)
        else:
            out.append(one(stripped))
    return "\n".join(out) + "\n"


def s3_client(region: str | None = None, **kw):
    """An S3 client that signs URLs with SigV4 (boto3's default presigned S3 URL is the legacy SigV2 form)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", region_name=region, config=Config(signature_version="s3v4"), **kw)


def presigner(s3, bucket: str, expires: int) -> Callable[[str], str]:
    """``key -> presigned GET URL`` valid for ``expires`` seconds (SigV4: X-Amz-Date + X-Amz-Expires)."""
    if not 1 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be between 1 and {MAX_EXPIRES} seconds")

    def sign(key: str) -> str:
        return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires)

    if "X-Amz-Expires=" not in sign(f"{LIVE_PREFIX}probe"):  # signing is local: no request is made
        raise ValueError("the S3 client must sign URLs with SigV4 (hls_presign.s3_client())")
    return sign


def playlist_key(path: str, prefix: str = LIVE_PREFIX) -> tuple[str, str]:
    """``/<stream>/<name>.m3u8`` -> (its key, the stream's prefix). PlaylistError for anything else."""
    parts = unquote(urlsplit(path).path).strip("/").split("/")
    if len(parts) != 2 or not all(_NAME.match(p) for p in parts) or not parts[1].endswith(".m3u8") \
            or parts[0] in (".", ".."):
        raise PlaylistError(f"{path!r} is not /<stream>/<playlist>.m3u8")
    stream_prefix = f"{prefix}{parts[0]}/"
    return stream_prefix + parts[1], stream_prefix


class PlaylistServer:
    """Serves ``http://127.0.0.1:<port>/<stream>/<playlist>.m3u8`` from ``s3://<bucket>/live/<stream>/``, the
    segment URIs signed afresh on every request. ``start()`` returns the base URL; ``stop()`` ends it."""

    def __init__(self, s3, bucket: str, *, expires: int = DEFAULT_EXPIRES, prefix: str = LIVE_PREFIX,
                 host: str = "127.0.0.1", port: int = 0):
        self.s3, self.bucket, self.prefix = s3, bucket, prefix
        self.sign = presigner(s3, bucket, expires)
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, body, ctype = server.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: a player polls every few seconds
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) for a GET of ``path``."""
        try:
            key, stream_prefix = playlist_key(path, self.prefix)
        except PlaylistError as e:
            return 404, f"{e}\n".encode(), "text/plain"
        try:
            text = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
        except self.s3.exceptions.NoSuchKey:
            return 404, f"no s3://{self.bucket}/{key}\n".encode(), "text/plain"
        except Exception as e:  # noqa: BLE001 - the player gets the reason; the server goes on
            return 502, f"s3://{self.bucket}/{key}: {type(e).__name__}: {e}\n".encode(), "text/plain"
        try:
            body = rewrite_playlist(text, key, self.sign, stream_prefix)
        except PlaylistError as e:
            return 502, f"{e}\n".encode(), "text/plain"
        self.fetches += 1
        return 200, body.encode(), MPEGURL

    def start(self) -> str:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hls-presign", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def add_arguments(p: argparse.ArgumentParser, bucket: bool = True) -> None:
    """The command's arguments; ``bucket=False`` leaves out ``--bucket`` and ``--region`` (``redactor cloud
    play`` takes them from the stack)."""
    p.add_argument("stream", help="the stream's name (its playlist is live/<stream>/index.m3u8)")
    if bucket:
        p.add_argument("--bucket", required=True, help="the output bucket (the stack's OutputBucketName)")
        p.add_argument("--region", default=None, help="the bucket's region (default: the AWS configuration's)")
    p.add_argument("--port", type=int, default=0, help="local port (default: any free port)")
    p.add_argument("--expires", type=int, default=DEFAULT_EXPIRES,
                   help=f"seconds each signed segment URL stays valid (default {DEFAULT_EXPIRES})")


def run(args: argparse.Namespace, s3=None) -> int:
    """Serve until interrupted (Ctrl-C). Prints the URL to open."""
    if not _NAME.match(args.stream) or args.stream in (".", ".."):
        print(f"{args.stream!r} is not a stream name", file=sys.stderr)
        return 2
    if s3 is None:
        s3 = s3_client(args.region)
    try:
        server = PlaylistServer(s3, args.bucket, expires=args.expires, port=args.port)
    except (ValueError, OSError) as e:
        print(f"cannot serve: {e}", file=sys.stderr)
        return 2
    base = server.start()
    print(f"{base}/{args.stream}/{PLAYLIST}", flush=True)
    print(f"(segment URLs signed for {args.expires} s on every playlist fetch; Ctrl-C stops)", file=sys.stderr)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m redactor.hls_presign",
                                description="Play a live stream from the private output bucket (local server)")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
