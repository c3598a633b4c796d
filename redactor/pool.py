"""A process pool built on ``multiprocessing.Process`` + ``Pipe`` only.

AWS Lambda has no ``/dev/shm``, so anything that creates a POSIX semaphore (``multiprocessing.Pool``,
``Queue``, ``Lock``, ``ProcessPoolExecutor``) fails there with ``OSError: [Errno 38]``. Processes and pipes
(socketpairs) work. Each task runs in its own forked process that reports progress and its result through
its pipe; the parent multiplexes pipes and process sentinels with ``multiprocessing.connection.wait``.
A task that raises, or a process that dies, fails the whole run (the other processes are terminated).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from multiprocessing.connection import wait
from typing import Any, Callable

from .errors import RedactorError, WorkerError


def _child(conn, fn, task):
    try:
        def progress(n: int):
            conn.send(("progress", n))
        result = fn(task, progress)
        conn.send(("done", result))
    except RedactorError as e:
        conn.send(("error", type(e).__name__, e.message, e.path, traceback.format_exc()))
    except BaseException as e:  # noqa: BLE001 - report everything to the parent, fail closed
        conn.send(("error", type(e).__name__, f"{type(e).__name__}: {e}", None, traceback.format_exc()))
    finally:
        conn.close()


def _context():
    # fork: no pickling of the task function, no semaphore-backed start-up (forkserver/spawn need neither,
    # but fork is cheapest and the only start method that also works in a Lambda sandbox without /dev/shm)
    return mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()


def run_tasks(fn: Callable[[Any, Callable[[int], None]], Any], tasks: list[Any],
              progress: Callable[[int], None] | None = None) -> list[Any]:
    """Run ``fn(task, progress_cb)`` for every task in its own process, all at once; results in task order.

    The caller sizes ``tasks`` to the number of usable cores. With a single task it runs in-process.
    """
    if len(tasks) == 1:
        return [fn(tasks[0], progress or (lambda n: None))]
    ctx = _context()
    procs, conns = [], {}
    results: list[Any] = [None] * len(tasks)
    done = [False] * len(tasks)
    try:
        for i, task in enumerate(tasks):
            parent_end, child_end = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(child_end, fn, task), daemon=True, name=f"redactor-worker-{i}")
            p.start()
            child_end.close()
            procs.append(p)
            conns[parent_end] = i
        waiting = dict(conns)
        sentinels = {p.sentinel: i for i, p in enumerate(procs)}
        while not all(done):
            ready = wait(list(waiting) + [s for s, i in sentinels.items() if not done[i]])
            for r in ready:
                if r in waiting:
                    i = waiting[r]
                    try:
                        msg = r.recv()
                    except EOFError:
                        del waiting[r]
                        if not done[i]:
                            raise WorkerError(f"worker {i} closed its pipe without a result "
                                              f"(exit code {procs[i].exitcode})")
                        continue
                    if msg[0] == "progress":
                        if progress:
                            progress(msg[1])
                    elif msg[0] == "done":
                        results[i] = msg[1]
                        done[i] = True
                    elif msg[0] == "error":
                        _, kind, message, path, tb = msg
                        err = _rebuild(kind, message, path)
                        err.worker_traceback = tb
                        raise err
                else:
                    i = sentinels[r]
                    if not done[i]:
                        # the process ended: drain its pipe first (the result may still be in it)
                        conn = next(c for c, j in conns.items() if j == i)
                        while conn in waiting and conn.poll():
                            msg = conn.recv()
                            if msg[0] == "done":
                                results[i], done[i] = msg[1], True
                            elif msg[0] == "error":
                                raise _rebuild(msg[1], msg[2], msg[3])
                        if not done[i]:
                            procs[i].join(1)
                            raise WorkerError(f"worker process {i} died (exit code {procs[i].exitcode}) "
                                              f"before finishing its frames")
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
        for c in conns:
            c.close()


def _rebuild(kind: str, message: str, path: str | None) -> RedactorError:
    from . import errors
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, RedactorError):
        return cls(message, path)
    return WorkerError(message, path)


def pid() -> int:
    return os.getpid()
