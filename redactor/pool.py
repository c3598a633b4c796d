"""A persistent process pool built on ``multiprocessing.Process`` + ``Pipe`` only.

AWS Lambda has no ``/dev/shm``, so anything that creates a POSIX semaphore (``multiprocessing.Pool``,
``Queue``, ``Lock``, ``ProcessPoolExecutor``) fails there with ``OSError: [Errno 38]``. Processes and pipes
(socketpairs) need no semaphore. Each worker is a forked process with one duplex pipe: the parent sends it a
task, the worker answers with progress messages and then its result (small dicts; frames never travel). A
worker builds its state (the face model) once, on its first task, and keeps it for the next tasks. A task
that raises, or a worker that dies, fails the whole run and the remaining workers are terminated.
"""
from __future__ import annotations

import multiprocessing as mp
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

from .errors import RedactorError, WorkerError

WorkerFn = Callable[[Any, Any, Callable[[int], None]], Any]  # (state, task, progress) -> result


def _child(conn, init_fn, worker_fn):
    state = None
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                if state is None and init_fn is not None:
                    state = init_fn()
                result = worker_fn(state, task, lambda n: conn.send(("progress", n)))
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
            p = ctx.Process(target=_child, args=(child_end, self.init_fn, self.worker_fn), daemon=True,
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
                        elif msg[0] == "done":
                            results[busy.pop(w)] = msg[1]
                            finished += 1
                            if pending:
                                ti = pending.pop()
                                self._conns[w].send(tasks[ti])
                                busy[w] = ti
                        elif msg[0] == "error":
                            raise _rebuild(msg[1], msg[2], msg[3], msg[4])
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
