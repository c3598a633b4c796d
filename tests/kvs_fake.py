"""A small fake of the Kinesis Video Streams archived-media endpoint (ListFragments, GetClip) for the consumer's
tests, answering the requests as botocore built them (a ``before-send`` handler on each archived-media client,
in place of moto's, whose ListFragments is not implemented and whose GetClip is a placeholder).

What is real: the requests (botocore serialises them from the service model and signs them; the fake parses
the JSON body and checks the URL is the data endpoint moto's GetDataEndpoint gave), the responses (botocore
parses them, errors included), and the media: a stream is an MP4 made by ``testmedia`` cut at its keyframes
into fragments, and GetClip muxes the selected fragments' packets (video and audio) into a new MP4 with PyAV.

What is faked: the fragment list (numbers, server/producer timestamps and sizes are made up from the clip's
keyframes and a start time), ingestion (a fragment is listed once the fake clock passes its end plus
``visible_after_ms``), the order (each listing is shuffled: KVS does not order it), the page size (``page``
fragments per page, smaller than MaxResults, so a short stream takes several pages), and the errors a test
injects (``fail_clip``: KVS error codes returned by the next GetClip calls; ``deleted``: the stream answers
ResourceNotFoundException; ``denied``: AccessDeniedException).
"""
from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import av
from botocore.awsrequest import AWSResponse


class _Raw(io.BytesIO):
    def stream(self, **_):
        yield self.getvalue()


@dataclass
class FakeFragment:
    number: int
    server_ms: int
    producer_ms: int
    length_ms: int
    start: Fraction  # media time in the source clip (s)
    end: Fraction
    source: str
    size: int = 0


class FakeArchivedMedia:
    def __init__(self, clock: Callable[[], float], page: int = 5, visible_after_ms: int = 500, seed: int = 0):
        self.clock = clock
        self.page = page
        self.visible_after_ms = visible_after_ms
        self.rng = random.Random(seed)
        self.fragments: dict[str, list[FakeFragment]] = {}
        self.deleted: set[str] = set()
        self.denied: set[str] = set()  # streams the caller's role may not read (AccessDeniedException)
        self.fail_clip: list[str] = []
        self.calls: list[tuple[str, str, dict]] = []  # (operation, stream, request body)
        self.endpoints: set[str] = set()  # the data endpoints the clients were made for

    # ------------------------------------------------------------ set-up

    def add_media(self, stream: str, source: str, server_start_ms: int) -> list[FakeFragment]:
        """The source MP4's keyframe-to-keyframe runs become more fragments of the stream, ingested from
        ``server_start_ms`` on (server and producer time follow media time)."""
        with av.open(source) as c:
            vs = c.streams.video[0]
            keys = sorted(Fraction(p.pts) * vs.time_base for p in c.demux(vs) if p.is_keyframe and p.pts is not None)
            duration = Fraction(vs.duration * vs.time_base) if vs.duration else None
            if duration is None:
                duration = Fraction(c.duration, av.time_base)
        bounds = keys + [duration]
        frags = self.fragments.setdefault(stream, [])
        number = frags[-1].number if frags else 91343852333181432392682062607743920146
        added = []
        for a, b in zip(bounds, bounds[1:]):
            number += self.rng.randint(1, 9)
            at = server_start_ms + round(a * 1000)
            added.append(FakeFragment(number=number, server_ms=at, producer_ms=at, length_ms=round((b - a) * 1000),
                                      start=a, end=b, source=source, size=round((b - a) * 100_000)))
        frags += added
        return added

    def attach(self, client) -> None:
        """Archive(client_hook=fake.attach): answer this archived-media client's requests."""
        from moto.core.models import botocore_stubber

        self.endpoints.add(client.meta.endpoint_url)
        # botocore asks every before-send handler; moto's would answer (or fail) too: this client is the fake's
        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register_first("before-send.kinesis-video-archived-media", self._answer)

    # ------------------------------------------------------------ the endpoint

    def _answer(self, request, **_):
        op = request.url.rsplit("/", 1)[-1]
        body = json.loads(request.body or b"{}")
        stream = body.get("StreamName", "")
        self.calls.append((op, stream, body))
        if not any(request.url.startswith(e) for e in self.endpoints):
            return self._error(400, "InvalidArgumentException", f"not a data endpoint: {request.url}")
        if stream in self.denied:
            return self._error(403, "AccessDeniedException", f"not authorized to read {stream}")
        if stream in self.deleted or stream not in self.fragments:
            return self._error(404, "ResourceNotFoundException", f"stream {stream} not found")
        if op == "listFragments":
            return self._list(stream, body)
        if op == "getClip":
            return self._clip(stream, body)
        return self._error(400, "InvalidArgumentException", f"unknown operation {op}")

    def visible(self, stream: str) -> list[FakeFragment]:
        now = self.clock() * 1000
        return [f for f in self.fragments[stream] if f.server_ms + f.length_ms + self.visible_after_ms <= now]

    def _list(self, stream: str, body: dict):
        token = body.get("NextToken")
        if token:
            state = json.loads(token)
            lo, hi, offset = state["lo"], state["hi"], state["offset"]
        else:
            rng = body["FragmentSelector"]["TimestampRange"]
            assert body["FragmentSelector"]["FragmentSelectorType"] == "SERVER_TIMESTAMP"
            lo, hi, offset = round(rng["StartTimestamp"] * 1000), round(rng["EndTimestamp"] * 1000), 0
        chosen = [f for f in self.visible(stream) if lo <= f.server_ms <= hi]
        page = chosen[offset:offset + min(self.page, int(body.get("MaxResults", 1000)))]
        self.rng.shuffle(page)
        out = {"Fragments": [{"FragmentNumber": str(f.number), "FragmentSizeInBytes": f.size,
                              "ProducerTimestamp": f.producer_ms / 1000, "ServerTimestamp": f.server_ms / 1000,
                              "FragmentLengthInMilliseconds": f.length_ms} for f in page]}
        if offset + len(page) < len(chosen):
            out["NextToken"] = json.dumps({"lo": lo, "hi": hi, "offset": offset + len(page)})
        return self._json(out)

    def _clip(self, stream: str, body: dict):
        if self.fail_clip:
            code = self.fail_clip.pop(0)
            return self._error(400, code, "injected")
        sel = body["ClipFragmentSelector"]
        assert sel["FragmentSelectorType"] == "SERVER_TIMESTAMP"
        lo, hi = round(sel["TimestampRange"]["StartTimestamp"] * 1000), round(sel["TimestampRange"]["EndTimestamp"] * 1000)
        assert hi > lo, "EndTimestamp must be later than StartTimestamp"
        chosen = [f for f in self.visible(stream) if lo <= f.server_ms <= hi]
        if not chosen:
            return self._error(404, "ResourceNotFoundException", "no fragments in the range")
        assert len({f.source for f in chosen}) == 1, "a clip spans two recordings (the consumer cuts at gaps)"
        payload = mux_clip(chosen[0].source, chosen[0].start, chosen[-1].end)
        return AWSResponse("https://fake", 200, {"Content-Type": "video/mp4", "Content-Length": str(len(payload))},
                           _Raw(payload))

    def _json(self, data: dict):
        raw = json.dumps(data).encode()
        return AWSResponse("https://fake", 200, {"Content-Type": "application/json"}, _Raw(raw))

    def _error(self, status: int, code: str, message: str):
        raw = json.dumps({"__type": code, "Message": message}).encode()
        return AWSResponse("https://fake", status, {"Content-Type": "application/json", "x-amzn-ErrorType": code},
                           _Raw(raw))


def mux_clip(source: str, start: Fraction, end: Fraction) -> bytes:
    """The packets of ``source`` with times in [start, end) (video from a keyframe), remuxed into an MP4 that
    starts at 0, as GetClip gives a clip."""
    buf = io.BytesIO()
    with av.open(source) as src, av.open(buf, "w", format="mp4") as out:
        streams = [s for s in src.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in src.demux(streams):
            if packet.pts is None or packet.size == 0:
                continue
            t = Fraction(packet.pts) * packet.time_base
            if not start <= t < end:
                continue
            shift = round(start / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return buf.getvalue()
