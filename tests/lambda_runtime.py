"""Run a Lambda function the way the Python runtime does: a fresh interpreter, a warm container, nothing else.

Parent side (imported by tests): :func:`build_runtime` builds, for this machine, the same pinned layers the stack
deploys (``layers/build.py --host``) plus a "runtime" directory holding what the Lambda Python runtime itself
provides (boto3/botocore at roughly the runtime's versions); :class:`Container` starts one function in its own
interpreter and invokes it, warm, as often as asked.

Child side (this file run as a script by :class:`Container`): the interpreter starts isolated (``-I -S``: no
site-packages, no user site, no ``PYTHON*`` variables, not even this file's folder on the path) and gets the
import path Lambda gives a function and nothing more::

    <task>          the function's code asset, as synthesized (what deploys as /var/task)
    <opt>/python    its layers, merged in template order like Lambda merges them into /opt
    stdlib          of the runtime's CPython version
    <runtime>       boto3, botocore and their dependencies (Lambda's /var/runtime)

``/dev/shm`` does not exist on Lambda: creating a POSIX semaphore fails with ``OSError: [Errno 38]``; the child
makes ``_multiprocessing.SemLock`` fail the same way before any code is imported. The environment is the
function's (from the template) plus the variables the Lambda runtime sets. The handler module is imported once
("init"), then every request on the control pipe is one invocation; stdout/stderr go to the container's log.

Only the standard library may be imported at this module's top level: the child runs it before its path is set.
"""
from __future__ import annotations

import json
import os
import sys

#: What the Lambda Python runtime provides (it is not in any layer: ``layers/build.py`` trims it).
#: The version is NOT documented: AWS's "Runtime-included SDK versions" (Lambda developer guide, "Building Lambda
#: functions with Python", https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html) says the SDK version
#: in the Python runtime "depends on the runtime version and your AWS Region" and gives a handler printing
#: ``boto3.__version__``/``botocore.__version__`` to find it; the per-runtime SDK column the runtimes page once
#: had (e.g. boto3-1.18.55 for python3.9) is gone and never listed python3.13. So this is an assumption: a 2025
#: release, older than the dev venv's; replace it with what that handler prints in the target Region.
RUNTIME_REQUIREMENTS = ("boto3==1.40.0", "botocore==1.40.0")


# ------------------------------------------------------------------------------------------------ child side
def _no_semaphores() -> None:
    import _multiprocessing

    class SemLock:  # what sem_open gives on Lambda, where /dev/shm is missing
        SEM_VALUE_MAX = _multiprocessing.SemLock.SEM_VALUE_MAX

        def __init__(self, *args, **kwargs):
            raise OSError(38, "Function not implemented")

    _multiprocessing.SemLock = SemLock


class _Context:
    """The handler's ``context`` argument (the attributes Powertools and the handlers read)."""

    def __init__(self, request: dict):
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = request["function_arn"]
        self.aws_request_id = request["request_id"]
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = request["deadline"]

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict:
    import traceback

    return {"errorType": error_type or type(exc).__name__, "errorMessage": str(exc),
            "stackTrace": traceback.format_tb(exc.__traceback__)[-5:]}


def _loaded_outside(roots: list[str]) -> list[str]:
    """Modules loaded from a file outside the allowed roots (this bootstrap itself excepted)."""
    out = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and name not in ("__main__", "__mp_main__") and not any(os.path.abspath(f).startswith(r + os.sep) for r in roots):
            out.append(f"{name}: {f}")
    return sorted(out)


def _try_semaphore() -> str:
    """What creating a multiprocessing lock does in this container ("ok" would mean /dev/shm semantics)."""
    import multiprocessing

    try:
        multiprocessing.get_context("fork").Lock()
        return "ok"
    except OSError as e:
        return f"OSError: {e}"


def child_main(argv: list[str]) -> int:
    task, opt, runtime, fd_in, fd_out = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    stdlib = [p for p in sys.path if p and os.path.abspath(p) != os.path.dirname(os.path.abspath(__file__))]
    sys.path[:] = [task, os.path.join(opt, "python"), *stdlib, runtime]
    _no_semaphores()
    roots = [os.path.realpath(p) for p in (task, opt, runtime)] + [os.path.abspath(p) for p in (task, opt, runtime)]
    roots += [os.path.abspath(p) for p in stdlib]
    inp, out = os.fdopen(fd_in, "rb"), os.fdopen(fd_out, "wb")

    def reply(msg: dict) -> None:
        out.write(json.dumps(msg).encode() + b"\n")
        out.flush()

    module, init_error = None, None
    try:
        import importlib

        module_name, func_name = os.environ["_HANDLER"].rsplit(".", 1)
        module = importlib.import_module(module_name)
        handler = getattr(module, func_name)
    except Exception as e:  # noqa: BLE001 - Lambda reports an init failure on every invocation
        kind = "Runtime.ImportModuleError" if isinstance(e, ImportError) else "Runtime.HandlerInitError"
        init_error = _error(e, kind)
        init_error["errorMessage"] = f"Unable to import module '{os.environ['_HANDLER']}': {e}"
        print(json.dumps(init_error), file=sys.stderr, flush=True)
    reply({"ready": init_error is None})
    for line in inp:
        request = json.loads(line)
        if request.get("stats"):
            reply({"modules": sorted(m for m in sys.modules if "." not in m),
                   "outside": _loaded_outside(roots), "sys_path": sys.path, "semaphore": _try_semaphore()})
            continue
        if init_error:
            reply({"error": init_error})
            continue
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
        os.environ["AWS_LAMBDA_REQUEST_ID"] = request["request_id"]
        try:
            result = handler(request["event"], _Context(request))
            reply({"result": json.dumps(result)})
        except Exception as e:  # noqa: BLE001 - reported to the invoker like Lambda does
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            reply({"error": _error(e)})
        sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------------------------- parent side
def find_python(version: str) -> str:
    """A CPython ``version`` interpreter on this machine (Lambda's runtime version), else this interpreter."""
    import glob
    import shutil
    import subprocess

    candidates = [os.environ.get("REDACTOR_LAMBDA_PYTHON"), shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for exe in filter(None, candidates):
        try:
            got = subprocess.run([exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if got == version:
            return exe
    return sys.executable


def python_version(exe: str) -> str:
    import subprocess

    return subprocess.run([exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def build_runtime(version: str, host_layers: bool = True) -> dict:
    """Host builds of the pip layers + the runtime dir, cached under layers/build/host-*/ (stamped).
    ``host_layers=False``: the runtime dir only (its packages are pure Python: any architecture runs them)."""
    import hashlib
    import subprocess
    from pathlib import Path

    from layers import build

    layers = {name: build.build_layer(name, version, host=True) for name in build.PIP_LAYERS} if host_layers else {}
    runtime = build.build_root(version, host=True) / "runtime"
    stamp = runtime.with_name(".runtime.stamp")
    want = hashlib.sha256(json.dumps([RUNTIME_REQUIREMENTS, version]).encode()).hexdigest()
    if not (runtime.is_dir() and stamp.is_file() and stamp.read_text() == want):
        import shutil

        shutil.rmtree(runtime, ignore_errors=True)
        stamp.unlink(missing_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
             str(runtime), "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
             "--no-compile", "--cache-dir", str(build.pip_cache()), *RUNTIME_REQUIREMENTS],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"installing the runtime's boto3 failed:\n{proc.stderr[-3000:]}")
        stamp.write_text(want)
    return {"layers": layers, "runtime": Path(runtime)}


def merge_layers(dest, layer_dirs: list) -> None:
    """An /opt for one function: each layer's top-level entries linked in, later layers winning (as Lambda
    extracts layers in order into the same /opt)."""
    from pathlib import Path

    dest = Path(dest)
    (dest / "python").mkdir(parents=True, exist_ok=True)
    for layer in layer_dirs:
        layer = Path(layer)
        for entry in layer.iterdir():
            if entry.name == "python":
                for sub in entry.iterdir():
                    link = dest / "python" / sub.name
                    if link.is_symlink() or link.exists():
                        link.unlink()
                    link.symlink_to(sub.resolve())
            else:
                link = dest / entry.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(entry.resolve())


class FunctionError(Exception):
    def __init__(self, payload: dict):
        super().__init__(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        self.payload = payload


def serve(containers: dict, names: dict, invocations: list, before=None):
    """moto's ``LambdaSimpleBackend.invoke`` answered by ``containers`` (handler -> Container): ``names`` maps a
    handler to its function name; each invocation is appended to ``invocations`` as (handler, event, "ok" or the
    error); ``before(handler, event)`` may raise FunctionError first (the platform's own answer, no code run)."""
    by_name = {fn_name: handler for handler, fn_name in names.items()}

    def invoke(backend, function_name, qualifier, body, headers, response_headers):
        handler = by_name[function_name.split(":function:")[-1].split(":")[0]]
        event = json.loads(body) if body else {}
        try:
            if before is not None:
                before(handler, event)
            result = containers[handler].invoke(event)
            invocations.append((handler, event, "ok"))
            return json.dumps(result).encode()
        except FunctionError as e:
            invocations.append((handler, event, str(e)))
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(e.payload).encode()

    return invoke


class Container:
    """One warm Lambda container for one function: ``invoke(event)`` -> result, in order, one at a time."""

    def __init__(self, name: str, python: str, task, layers: list, runtime, env: dict, root,
                 memory_mb: int = 128, timeout_s: int = 900, init_timeout_s: float = 300):
        import subprocess
        import threading
        from pathlib import Path

        self.name = name
        self.root = Path(root)
        self.opt = self.root / "opt"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        merge_layers(self.opt, layers)
        self.log_path = self.root / "log.txt"
        self.timeout_s = timeout_s
        self.init_timeout_s = init_timeout_s  # an emulated interpreter's imports take minutes
        self.arn = f"arn:aws:lambda:{env.get('AWS_REGION', 'us-east-1')}:123456789012:function:{name}"
        full_env = {
            "PATH": "/usr/local/bin:/usr/bin/:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(task), "LAMBDA_RUNTIME_DIR": str(runtime), "_HANDLER": "handler.handler",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python_version(python)}",
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}", "AWS_LAMBDA_LOG_STREAM_NAME": "test",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "TMPDIR": str(self.tmp),
            # the layer's model path (/opt/...) points into this container's /opt
            **{k: (str(self.opt) + v[len("/opt"):] if isinstance(v, str) and v.startswith("/opt/") else v)
               for k, v in env.items()},
        }
        c_in, p_out = os.pipe()
        p_in, c_out = os.pipe()
        self._log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-S", os.path.abspath(__file__), "--child", str(task),
                 str(self.opt), str(runtime), str(c_in), str(c_out)],
                env=full_env, cwd=str(task), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                pass_fds=(c_in, c_out))
        finally:
            os.close(c_in)
            os.close(c_out)
        self._w = os.fdopen(p_out, "wb")
        self._r = os.fdopen(p_in, "rb")
        self._lock = threading.Lock()
        self._ready: bool | None = None  # the init ("cold start") runs while the other containers start

    @property
    def ready(self) -> bool:
        """Whether the handler module imported (waits for the container's init)."""
        if self._ready is None:
            with self._lock:
                if self._ready is None:
                    self._ready = bool(self._read(timeout=self.init_timeout_s).get("ready"))
        return self._ready

    def _read(self, timeout: float) -> dict:
        import select

        ready, _, _ = select.select([self._r], [], [], timeout)
        line = self._r.readline() if ready else b""
        if not line:
            raise FunctionError({"errorType": "Runtime.ExitError" if ready else "Sandbox.Timedout",
                                 "errorMessage": f"{self.name}: container {'exited' if ready else 'timed out'}; "
                                                 f"log:\n{self.log_tail()}"})
        return json.loads(line)

    def _request(self, msg: dict, timeout: float) -> dict:
        self.ready  # noqa: B018 - the init message comes first
        with self._lock:
            self._w.write(json.dumps(msg).encode() + b"\n")
            self._w.flush()
            return self._read(timeout)

    def invoke(self, event):
        """Run the handler on ``event`` (JSON-serializable) and return its result; raises FunctionError."""
        import time
        import uuid

        request_id = str(uuid.uuid4())
        reply = self._request({"event": event, "request_id": request_id, "function_arn": self.arn,
                               "deadline": time.time() + self.timeout_s,
                               "trace_id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};"
                                           f"Parent={uuid.uuid4().hex[:16]};Sampled=0"}, self.timeout_s + 30)
        if "error" in reply:
            raise FunctionError(reply["error"])
        return json.loads(reply["result"])

    def stats(self) -> dict:
        """The modules the container has loaded, any loaded from outside its path, and its sys.path."""
        return self._request({"stats": True}, 60)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        self._log.close()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--child":
    sys.exit(child_main(sys.argv[2:]))
