"""Stopping the CLI from outside never leaves a worker process or a temporary file behind.

The real `redactor redact --workers 2` runs in its own process group on a generated clip; once both workers are
writing their parts, the parent is killed: SIGTERM (how containers, batch schedulers and service managers stop
a job: it must clean up and exit 143) or SIGKILL (no cleanup code can run: the workers must die with their
parent and the janitor must remove the files). Then no process of the run may be alive — checked by the PIDs
seen while it ran and by its process group — and the work directory and the output directory must be empty.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a live (not zombie) process, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # a zombie holds no memory and no files: it is gone
        return None
    return fields[0], int(fields[1]), int(fields[2])


def _processes():
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                yield int(d), st


def _descendants(root: int) -> set[int]:
    procs = dict(_processes())
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (_, ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def _group(pgid: int) -> set[int]:
    return {pid for pid, (_, _, pgrp) in _processes() if pgrp == pgid}


def _wait_for(cond, timeout: float, what: str, proc: subprocess.Popen, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}: {log.read()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_cli_leaves_no_worker_and_no_file(sig, media, model_path, tmp_path):
    # the kill comes as soon as both workers have opened their parts; the clip keeps them busy for seconds more
    clip = media("signals.mp4", width=320, height=240, seconds=4.0, faces=1)
    work, outdir = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    outdir.mkdir()
    env = dict(os.environ, REDACTOR_WORK_DIR=str(work))
    stderr = (tmp_path / "stderr.txt").open("w+")  # a file, not a pipe: an orphan holding it cannot stall us
    proc = subprocess.Popen(
        [sys.executable, "-m", "redactor", "redact", clip["path"], "-o", str(outdir / "out.mp4"),
         "--report", str(outdir / "report.json"), "--workers", "2", "--model", model_path, "-q"],
        env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    try:
        def two_workers_writing():
            parts = list(work.glob("redactor-*/part-*"))
            kids = _descendants(proc.pid)
            return kids if len(parts) >= 2 and len(kids) >= 2 else None
        seen = _wait_for(two_workers_writing, 120, "two workers writing their parts", proc, stderr)
        seen |= _descendants(proc.pid)  # the workers and the janitor
        assert list(work.iterdir()), "the run's temporary directory exists while it runs"
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        stderr.seek(0)
        err = stderr.read()
        alive = lambda: {pid for pid in seen if _stat(pid)} | _group(proc.pid)  # noqa: E731
        deadline = time.monotonic() + 15
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(), f"processes of the killed run still alive: {sorted(alive())}"
        left = sorted(str(p.relative_to(tmp_path)) for p in list(work.rglob("*")) + list(outdir.iterdir()))
        assert left == [], f"temporary files left behind: {left}"
        if sig == signal.SIGTERM:  # handled: the same cleanup as Ctrl-C, then the conventional 128 + 15
            assert proc.returncode == 143, err
            assert "terminated by SIGTERM" in err
        else:
            assert proc.returncode == -signal.SIGKILL
    finally:
        for pid in _group(proc.pid):  # never leave this test's own processes running, whatever failed
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
