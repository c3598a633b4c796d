"""A throttle never fails a run: the synthesized workflow, in moto's interpreter, against an account that throttles.

The simulated account (``ThrottlingAccount``) has 2 concurrent executions in all (the Map asks for 8) and
refuses every invocation its first 8 attempts with Lambda's ``TooManyRequestsException`` (HTTP 429), which the
interpreter reports as ``Lambda.TooManyRequestsException``, as Step Functions does. The old definition (6
retries, ~2 min) fails this run; the deployed one (120 retries, 2 s doubling to at most 60 s, full jitter) redacts
the video.

moto honours IntervalSeconds, BackoffRate, MaxDelaySeconds and JitterStrategy with a real ``time.sleep`` in its
retrier. The definition under test is exactly the synthesized one; only the clock is compressed: each wait the
retrier asks for is recorded and slept for 1/100 of it (a 60 s wait takes 0.6 s), while segments take their real
time. So the test is faster than the real thing and, if anything, harsher.
"""
from __future__ import annotations

import collections
import threading
import time
import types
from unittest import mock

import pytest

from tests import aws_support as aws
from tests.conftest import video_times
from tests.test_workflow_e2e import Pipeline

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402
from moto.core.exceptions import JsonRESTError  # noqa: E402
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl  # noqa: E402

SLOTS = 2  # concurrent executions of the whole simulated account
COLD_REFUSALS = 8  # every invocation is refused this many times before it may run (old retry budget: 6 retries)
CLOCK = 100  # the retrier's waits are slept 1/CLOCK of their length


class TooManyRequests(JsonRESTError):
    """Lambda's answer when the account (or function) has no concurrency left: HTTP 429."""

    code = 429

    def __init__(self):
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


class ThrottlingAccount:
    def __init__(self, slots: int, cold_refusals: int):
        self.slots = threading.BoundedSemaphore(slots)
        self.cold_refusals = cold_refusals
        self.lock = threading.Lock()
        self.attempts: collections.Counter = collections.Counter()
        self.refused: collections.Counter = collections.Counter()
        self.busy_refusals = 0  # refused because every slot was taken (beyond the cold refusals)
        self.waits: list[float] = []  # every wait the interpreter's retrier asked for, in seconds

    def wrap(self, invoke):
        def throttled(backend, function_name, qualifier, body, headers, response_headers):
            call = (function_name, body if isinstance(body, (str, bytes)) else repr(body))
            with self.lock:
                self.attempts[call] += 1
                cold = self.attempts[call] <= self.cold_refusals
            if cold or not self.slots.acquire(blocking=False):
                with self.lock:
                    self.refused[call] += 1
                    self.busy_refusals += 0 if cold else 1
                raise TooManyRequests()
            try:
                return invoke(backend, function_name, qualifier, body, headers, response_headers)
            finally:
                self.slots.release()

        return throttled

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)
        time.sleep(seconds / CLOCK)


class ThrottledPipeline(Pipeline):
    def __init__(self, *args, account: ThrottlingAccount, **kw):
        super().__init__(*args, **kw)
        self.account = account

    def _invoke_factory(self):
        return self.account.wrap(super()._invoke_factory())


@pytest.fixture
def throttled(model_path, tmp_path):
    account = ThrottlingAccount(SLOTS, COLD_REFUSALS)
    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config), mock.patch.object(retrier_decl, "time", types.SimpleNamespace(sleep=account.sleep)):
        p = ThrottledPipeline(aws.synthesized_once()[0], model_path, tmp_path, account=account,
                              engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5", "REDACTOR_WORKERS": "1"})
        with p.running():
            yield p


def test_a_throttling_account_still_gets_its_video(throttled, media):
    clip = media("throttled.mp4", width=320, height=240, seconds=2, audio="aac", faces=1, face_size=(70, 90))
    key = "fleet/throttled.mp4"
    started = throttled.deliver(throttled.upload(clip["path"], key))
    done = throttled.wait(started["executionArn"], timeout=600)
    account = throttled.account

    assert done["status"] == "SUCCEEDED", done
    outputs = throttled.keys(throttled.output)
    assert {f"redacted/{key}", f"redacted/{key}.report.json"} <= set(outputs)
    assert all(k.startswith(f"redacted/{key}") for k in outputs), outputs  # no failed/ record
    assert throttled.keys(throttled.work, "runs/") == []
    out = throttled.get(throttled.output, f"redacted/{key}", throttled.tmp / "out.mp4")
    assert video_times(str(out)) == video_times(clip["path"])

    # every handler ran exactly once, and only after being refused at least COLD_REFUSALS times
    ran = collections.Counter(name for name, _, outcome in throttled.invocations if outcome == "ok")
    assert all(outcome == "ok" for _, _, outcome in throttled.invocations), throttled.invocations
    segments = ran["redact"]
    assert segments >= 4 and ran["plan"] == ran["stitch"] == 1 and "record_failure" not in ran, ran
    assert len(account.refused) == segments + 2
    assert min(account.refused.values()) >= COLD_REFUSALS
    print(f"{sum(account.refused.values())} refusals ({account.busy_refusals} for want of a free slot) "
          f"of {sum(account.attempts.values())} invocation attempts; waits asked for: "
          f"{sum(account.waits):.0f} s in all, longest {max(account.waits):.1f} s")

    # capped exponential backoff with full jitter: no wait above 60 s, some near the cap, all different
    assert len(account.waits) == sum(account.refused.values())
    assert max(account.waits) <= 60
    assert max(account.waits) > 30
    assert len(set(account.waits)) == len(account.waits)
