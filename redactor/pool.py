"""A persistent process pool built on ``multiprocessing.Process`` + ``Pipe`` only.

AWS Lambda has no ``/dev/shm``, so anything that creates a POSIX semaphore (``multiprocessing.Pool``,
``Queue``, ``Lock``, ``ProcessPoolExecutor``) fails there with ``OSError: [Errno 38]``. Processes and pipes
(socketpairs) need no semaphore. Each worker is a forked process with one duplex pipe: the parent sends it a
task, the worker answers with progress messages and then its result (small dicts; frames never travel). A
worker builds its state (the face model) once, on its first task, and keeps it for the next tasks. Tasks of
one run can hand each other small results through the parent (``Channel.publish`` / ``fetch``: the chunk
worker uses it for the detections and boxes at a chunk cut, see ``chunk.py``). A task that raises,
or a worker that dies, fails the whole run and the remaining workers are terminated.

No worker outlives its parent: each one asks the kernel (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to be
killed when the parent dies, whatever killed it (SIGKILL included); where that call does not exist, a watcher
thread polls ``getppid()``. A worker also resets SIGTERM/SIGHUP to their default action, so the parent's
handlers (see ``redactor.cli``) are not inherited and ``terminate()`` always ends it. Files the workers were
writing are removed by the parent on every exit it lives through, and by a :class:`Janitor` when it does not.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

from .errors import RedactorError, WorkerError

WorkerFn = Callable[[Any, Any, "Channel"], Any]  # (state, task, channel) -> result


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """In a forked worker: end this process as soon as ``parent_pid`` is gone (never an orphan)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    if armed:
        # the death signal fires when the *thread* that forked us ends; the pool lives inside one call,
        # so that thread outlives the pool (the watcher below would cover any other use)
        return

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="redactor-parent-watch", daemon=True).start()


class Channel:
    """What a task's body gets from the pool: ``progress`` reports a number of frames done;
    ``publish``/``fetch`` exchange small results with the other tasks of the same ``run`` through the parent
    (the pool keeps what was published until the run ends). ``fetch`` answers with what the parent holds
    now (a task that does not get what it asked for computes it itself), or with ``wait`` once all of it is
    there."""

    def __init__(self, conn):
        self._conn = conn

    def progress(self, n: int) -> None:
        self._conn.send(("progress", n))

    def publish(self, items: dict) -> None:
        self._conn.send(("publish", items))

    def fetch(self, keys: list, wait: bool = False) -> dict:
        """What has been published of ``keys``. ``wait``: block until all of them are (only for tasks that
        all run at once, whose publishers never wait on them); the parent answers with what it has when
        every running task is waiting, so a publisher that failed to publish fails the run, not hangs it."""
        self._conn.send(("fetch", list(keys), bool(wait)))
        msg = self._conn.recv()
        if not (isinstance(msg, tuple) and msg and msg[0] == "fetched"):  # pragma: no cover - protocol error
            raise WorkerError(f"unexpected message from the pool: {msg!r:.80}")
        return msg[1]


def _child(conn, init_fn, worker_fn, parent_pid):
    _die_with_parent(parent_pid)
    state = None
    channel = Channel(conn)
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                if state is None and init_fn is not None:
                    state = init_fn()
                result = worker_fn(state, task, channel)
                conn.send(("done", result))
            except RedactorError as e:
                conn.send(("error", type(e).__name__, e.message, e.path, traceback.format_exc()))
            except BaseException as e:  # noqa: BLE001 - everything goes to the parent, which fails closed
                conn.send(("error", type(e).__name__, f"{type(e).__name__}: {e}", None, traceback.format_exc()))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        return
    finally:
        conn.close()


def _rebuild(kind: str, message: str, path: str | None, tb: str | None = None) -> RedactorError:
    from . import errors
    cls = getattr(errors, kind, None)
    err = cls(message, path) if isinstance(cls, type) and issubclass(cls, RedactorError) else WorkerError(
        message, path)
    err.worker_traceback = tb
    return err


class WorkerPool:
    """``with WorkerPool(n, worker_fn, init_fn) as pool: results = pool.run(tasks, progress)``.

    Work always runs in forked children, even with ``n == 1``: the parent never starts OpenCV's thread pool,
    which does not survive a fork (a child that inherits a live pool hangs in ``cv2.setNumThreads``). The
    fork start method needs no semaphore and lets ``init_fn``/``worker_fn`` be closures (only tasks and
    results are pickled).
    """

    def __init__(self, n: int, worker_fn: WorkerFn, init_fn: Callable[[], Any] | None = None):
        self.n = max(1, int(n))
        self.worker_fn = worker_fn
        self.init_fn = init_fn
        self._procs: list = []
        self._conns: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        if self._procs:
            return
        ctx = mp.get_context("fork")
        for i in range(self.n):
            parent_end, child_end = ctx.Pipe(duplex=True)
            p = ctx.Process(target=_child, args=(child_end, self.init_fn, self.worker_fn, os.getpid()), daemon=True,
                            name=f"redactor-worker-{i}")
            p.start()
            child_end.close()
            self._procs.append(p)
            self._conns.append(parent_end)

    def run(self, tasks: list[Any], progress: Callable[[int], None] | None = None) -> list[Any]:
        progress = progress or (lambda n: None)
        self._start()
        results: list[Any] = [None] * len(tasks)
        pending = list(range(len(tasks)))[::-1]
        busy: dict[int, int] = {}  # worker -> task index
        shared: dict = {}  # what tasks published for each other (Channel.publish / fetch), this run only
        waiting: dict[int, list] = {}  # worker -> the keys its fetch(wait=True) still waits for

        def answer(force: bool = False) -> None:
            for w in [w for w, keys in waiting.items() if force or all(k in shared for k in keys)]:
                self._conns[w].send(("fetched", {k: shared[k] for k in waiting.pop(w) if k in shared}))
        finished = 0
        try:
            for w in range(self.n):
                if pending:
                    ti = pending.pop()
                    self._conns[w].send(tasks[ti])
                    busy[w] = ti
            while finished < len(tasks):
                watch = [self._conns[w] for w in busy] + [self._procs[w].sentinel for w in busy]
                for r in wait(watch):
                    if r in self._conns:
                        w = self._conns.index(r)
                        try:
                            msg = r.recv()
                        except EOFError:
                            raise WorkerError(f"worker {w} closed its pipe (exit code {self._procs[w].exitcode})")
                        if msg[0] == "progress":
                            progress(msg[1])
                        elif msg[0] == "publish":
                            shared.update(msg[1])
                            answer()
                        elif msg[0] == "fetch":
                            if len(msg) > 2 and msg[2]:
                                waiting[w] = msg[1]
                                answer()
                            else:
                                r.send(("fetched", {k: shared[k] for k in msg[1] if k in shared}))
                        elif msg[0] == "done":
                            results[busy.pop(w)] = msg[1]
                            finished += 1
                            if pending:
                                ti = pending.pop()
                                self._conns[w].send(tasks[ti])
                                busy[w] = ti
                        elif msg[0] == "error":
                            raise _rebuild(msg[1], msg[2], msg[3], msg[4])
                        if waiting and len(waiting) == len(busy):  # nobody left to publish what they wait for
                            answer(force=True)
                    else:
                        w = next(i for i, p in enumerate(self._procs) if p.sentinel == r)
                        if w in busy and not self._conns[w].poll():
                            self._procs[w].join(1)
                            raise WorkerError(f"worker process {w} died (exit code {self._procs[w].exitcode}) "
                                              f"before finishing its frames")
            return results
        except BaseException:
            self.close(force=True)
            raise

    def close(self, force: bool = False):
        for c in self._conns:
            try:
                if not force:
                    c.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            if force and p.is_alive():
                p.terminate()
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(1)
        for c in self._conns:
            c.close()
        self._procs, self._conns = [], []


# The janitor's whole program: it runs in a fresh interpreter (``-I -S``: stdlib only) holding nothing but the
# read end of a pipe. Each line is a JSON path to remove if the owner dies; "done" means the owner cleaned up.
_JANITOR = r"""
import json, os, shutil, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_IGN)
fd, paths, buf = int(sys.argv[1]), [], b""
while True:
    chunk = os.read(fd, 4096)
    if not chunk:
        break
    buf += chunk
    *lines, buf = buf.split(b"\n")
    for line in lines:
        if line == b'"done"':
            sys.exit(0)
        paths.append(json.loads(line))
for p in paths:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            os.unlink(p)
        except OSError:
            pass
"""


class Janitor:
    """Removes a run's temporary files when the process that owns them dies without cleaning up (SIGKILL,
    OOM killer, a crash). ``with Janitor() as j: j.add(path) ...`` and clean up normally: leaving the block
    tells the janitor the owner is done and it exits without touching anything.

    The janitor is a small separate interpreter that blocks reading a pipe whose only write end is the
    owner's. Worker processes forked later inherit that write end, so the janitor reads end-of-file only
    when the owner *and every worker* are gone (workers die with their parent, see ``_die_with_parent``):
    it never removes a file a live worker is still writing. It ignores SIGINT/SIGTERM/SIGHUP (a signal to
    the whole process group must not stop it before the owner dies) and needs no semaphore.
    """

    def __init__(self):
        r, self._w = os.pipe()
        try:
            self._proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _JANITOR, str(r)], pass_fds=(r,),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        except BaseException:
            os.close(self._w)
            raise
        finally:
            os.close(r)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _send(self, obj) -> None:
        try:
            os.write(self._w, json.dumps(obj).encode() + b"\n")
        except OSError:  # the janitor is gone (a signal reached it before it could ignore it)
            pass

    def add(self, path: str) -> None:
        """Remove ``path`` (a file or a directory tree) if the owner dies before ``close``."""
        self._send(os.path.abspath(path))

    def close(self) -> None:
        if self._w is None:
            return
        self._send("done")
        os.close(self._w)
        self._w = None
        self._proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
