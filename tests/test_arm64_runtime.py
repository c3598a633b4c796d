"""The arm64 artifacts ``cdk deploy`` uploads run: on an arm64 CPython of the stack's runtime version, emulated.

The layers are the ones a deploy ships: ``layers/build.py``'s arm64 builds and the engine layer, each taken from the
cloud assembly ``cdk synth`` writes with the real layers (``placeholder_layers=false``), beside each function's code
asset. They run on Debian's arm64 ``python3.13`` under qemu user-mode emulation (``tests/arm64_sysroot.py`` builds
and caches that userland; the kernel's binfmt_misc hands every arm64 program to qemu, so the engine's worker and
janitor processes run emulated too):

* every ELF file of every layer is loaded with immediate binding (``tests/arm64_probe.py``), and a scratch copy of
  the FFmpeg layer with one library broken on purpose fails that probe and ``import av``;
* the functions run as ``tests/test_deployed_runtime.py`` runs them on this machine's build (one fresh isolated
  interpreter per function, its code asset and layers on the path, boto3 from a runtime folder, moto in server
  mode, the synthesized state machine in moto's interpreter), each interpreter the emulated arm64 one: a generated
  clip with a face goes through Start, Plan, the Map of Redact and Stitch, and comes out blurred, frame-exact;
* statically, no ELF file in any layer needs a ``GLIBC_`` symbol version above Lambda's glibc (2.34): the emulated
  userland's glibc is newer, so only this check sees that.

Emulation needs ``qemu-user-static`` and root (binfmt_misc registration) once; ``.ci/run`` installs qemu. Without
them the emulated tests skip with the reason, and under ``CI=true`` they fail instead.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path
from unittest import mock

import pytest

from layers import build, glibc
from stacks.layout import FUNCTION_LAYERS, LAYER_DESCRIPTIONS
from tests import arm64_sysroot as sysroot
from tests import aws_support as aws
from tests import lambda_runtime as lr
from tests.conftest import audio_packets, video_times
from tests.moto_server import _moto_server_session, moto_server  # noqa: F401 - fixtures

moto = pytest.importorskip("moto")
from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: E402

from tests.test_workflow_e2e import FN_NAMES, Pipeline, assert_faces_blurred  # noqa: E402

pytestmark = pytest.mark.slow

PYTHON_VERSION = aws.cdk_context()["python_version"]
PROBE = Path(__file__).with_name("arm64_probe.py")
#: The functions a successful run calls: each gets an emulated container (Record failure runs only when a run
#: fails, and then this test fails on the other functions' logs anyway).
SUCCESS_PATH = ("start", "plan", "redact", "stitch")
INIT_TIMEOUT_S = 900  # four emulated interpreters importing boto3, Powertools, PyAV, OpenCV, numpy at once


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the arm64 runtime cannot be emulated here: {reason}")
    pytest.skip(f"arm64 emulation unavailable, the arm64 layers are NOT run: {reason}")


@pytest.fixture(scope="module")
def arm64_python():
    """Debian's arm64 python3.13 (cached sysroot), runnable like a native program (binfmt + QEMU_LD_PREFIX)."""
    try:
        root = sysroot.build()
        sysroot.ensure_binfmt()
    except sysroot.Unavailable as e:
        _unavailable(str(e))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in sysroot.interpreter_env(root).items():
            mp.setenv(k, v)
        yield root / sysroot.PYTHON


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> tuple[dict, Path]:
    """(template, cloud assembly dir) as `cdk synth` makes them with the arm64 layers built for real."""
    for name in build.PIP_LAYERS:
        build.build_layer(name, PYTHON_VERSION)
    assembly, _ = aws.synth(str(tmp_path_factory.mktemp("cdk-arm64")), nag=False, placeholder_layers=False)
    return assembly.get_stack_by_name("Redactor").template, Path(assembly.directory)


def _layer_name(template: dict, lid: str) -> str:
    path = template["Resources"][lid]["Metadata"]["aws:cdk:path"]  # .../Functions/VisionLayer/Resource
    return path.split("/")[-2].removesuffix("Layer").lower()


def layer_assets(template: dict, assembly: Path) -> dict[str, Path]:
    """Layer name -> its folder in the cloud assembly (what `cdk deploy` zips and uploads)."""
    return {_layer_name(template, lid): assembly / r["Metadata"]["aws:asset:path"]
            for lid, r in aws.resources(template, "AWS::Lambda::LayerVersion").items()}


def probe(python: Path, layers: list[Path], imports: tuple[str, ...] = ()) -> tuple[int, dict, str]:
    """Run tests/arm64_probe.py on ``python``: (exit code, its JSON report or {}, stderr's tail)."""
    cmd = [str(python), "-I", str(PROBE), *(f"--import={m}" for m in imports), *map(str, layers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        report = {}
    return proc.returncode, report, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------ static (no emulation)
def test_no_layer_needs_a_newer_glibc_than_lambdas(deployed):
    """Lambda's python3.13 runtime (Amazon Linux 2023) has glibc 2.34; a library needing a later GLIBC_ symbol
    version does not load there, whatever the emulated userland (glibc 2.41) says."""
    layers = layer_assets(*deployed)
    assert set(layers) == set(LAYER_DESCRIPTIONS), layers
    assert {name: glibc.above(path) for name, path in layers.items()} == {name: {} for name in layers}
    # the check reads real requirements: every compiled layer needs some GLIBC_ version (2.17 at least: the
    # manylinux2014 baseline), and against a lower ceiling the files needing the newest one show up
    needs = {name: max(filter(None, map(glibc.glibc_needed, glibc.elf_files(layers[name]))), default=None)
             for name in build.PIP_LAYERS}
    assert all(v is not None and v >= (2, 17) for v in needs.values()), needs
    for name in ("ffmpeg", "vision"):
        flagged = glibc.above(layers[name], ceiling=(2, 17))
        assert flagged and max(map(glibc.glibc_version, flagged.values())) == needs[name] > (2, 17), (name, flagged)


def test_the_glibc_check_flags_an_arm64_file_built_against_a_newer_glibc(arm64_python):
    """The emulated userland's own python3.13 is built against glibc 2.41: it needs GLIBC_2.38 symbols, which
    Lambda's glibc lacks; the same check that passes the layers flags it."""
    bin_dir = arm64_python.parent
    flagged = glibc.above(bin_dir)
    assert flagged.get(arm64_python.name, "").startswith("GLIBC_2.") and \
        glibc.glibc_needed(arm64_python) > glibc.LAMBDA_GLIBC, flagged


# ------------------------------------------------------------------------------------------ emulated arm64
def test_every_layer_library_loads_on_arm64(arm64_python, deployed):
    layers = layer_assets(*deployed)
    ordered = [layers[name] for name in sorted(layers)]
    code, report, err = probe(arm64_python, ordered)
    assert code == 0 and report["failures"] == {}, (code, report, err)
    assert report["machine"] == "aarch64" and report["python"] == PYTHON_VERSION, report
    assert report["libraries_loaded"] == sum(len(glibc.elf_files(p)) for p in ordered) > 100, report


def _truncate(path: Path) -> None:
    path.write_bytes(b"")


def _misalign(path: Path) -> None:
    """Move the second LOAD segment's file offset off its address modulo the alignment (the fault a strip that
    repacks segments carelessly makes: "ELF load command address/offset not page-aligned")."""
    data = bytearray(path.read_bytes())
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    headers = [phoff + i * phentsize for i in range(phnum)]
    loads = [at for at in headers if struct.unpack_from("<I", data, at)[0] == 1]  # PT_LOAD
    offset, = struct.unpack_from("<Q", data, loads[1] + 8)
    struct.pack_into("<Q", data, loads[1] + 8, offset + 8)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("breakage", [_truncate, _misalign], ids=["truncated", "misaligned"])
def test_a_broken_layer_library_fails_the_probe(arm64_python, deployed, tmp_path, breakage):
    """A scratch copy of the FFmpeg layer with libavcodec broken: the probe names it and `import av` fails."""
    layer = shutil.copytree(layer_assets(*deployed)["ffmpeg"], tmp_path / "ffmpeg", symlinks=True)
    (lib,) = (layer / "python" / "av.libs").glob("libavcodec-*.so*")
    breakage(lib)
    code, report, err = probe(arm64_python, [layer], imports=("av",))
    assert code == 1, (code, report, err)
    failures, name = report["failures"], str(lib.relative_to(layer))
    assert name in failures and "import av" in failures and lib.name in failures["import av"], failures
    print(json.dumps({k: failures[k] for k in (name, "import av")}, indent=1))


# ------------------------------------------------------------------------------------------ emulated end to end
class Arm64Pipeline(Pipeline):
    """The stack's resources in moto (server mode), each function of a successful run in its own container on the
    arm64 python, its code and every layer taken from the cloud assembly."""

    def __init__(self, template: dict, assembly: Path, server, python: Path, runtime: Path, tmp: Path,
                 engine_env: dict[str, str]):
        super().__init__(template, "unused", tmp, engine_env)
        layers = layer_assets(template, assembly)
        subs = {aws.logical_id_of(template, "AWS::S3::Bucket", f"/Storage/{name}/"): bucket
                for name, bucket in (("Raw", self.raw), ("Work", self.work), ("Output", self.output))}
        (sm_lid,) = aws.resources(template, "AWS::StepFunctions::StateMachine")
        subs[sm_lid] = self.state_machine_arn
        self.containers: dict[str, lr.Container] = {}
        try:
            for name in SUCCESS_PATH:
                _, fn = aws.function_by_service(template, name)
                props = fn["Properties"]
                names = [_layer_name(template, ref["Ref"]) for ref in props.get("Layers", [])]
                assert sorted(names) == sorted(FUNCTION_LAYERS[name]), (name, names)
                env = {k: (v if isinstance(v, str) else subs[v["Ref"]])
                       for k, v in props["Environment"]["Variables"].items()}
                env.update(server.env, **sysroot.interpreter_env(python.parents[2]))
                if any(k.startswith("REDACTOR_") for k in env):  # the engine's functions: test-sized settings
                    env.update(engine_env)
                self.containers[name] = lr.Container(
                    FN_NAMES[name], str(python), assembly / fn["Metadata"]["aws:asset:path"],
                    [layers[n] for n in names], runtime, env, tmp / name,
                    memory_mb=props.get("MemorySize", 128), timeout_s=props.get("Timeout", 900),
                    init_timeout_s=INIT_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def close(self):
        for c in self.containers.values():
            c.close()

    def invoke_factory(self):
        def on_path(handler: str, event: dict) -> None:
            if handler not in self.containers:
                raise lr.FunctionError({"errorType": "NotEmulated", "errorMessage": f"{handler} is not on the "
                                        "success path: the run failed (see the other functions' logs)"})

        return lr.serve(self.containers, FN_NAMES, self.invocations, before=on_path)

    def deliver(self, event: dict) -> dict:
        """EventBridge -> the starter's container."""
        return self.containers["start"].invoke(event)


@pytest.fixture
def arm64_pipeline(arm64_python, deployed, moto_server, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    template, assembly = deployed
    runtime = lr.build_runtime(PYTHON_VERSION, host_layers=False)["runtime"]
    assert glibc.elf_files(runtime) == [], "the runtime folder must be pure Python to stand in for arm64's"
    moto_server.configure({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
    monkeypatch.setenv("MOTO_PORT", moto_server.endpoint.rsplit(":", 1)[1])
    p = Arm64Pipeline(template, assembly, moto_server, arm64_python, runtime, tmp_path / "lambda",
                      engine_env={"REDACTOR_SEGMENT_SECONDS": "0.5"})
    try:
        with mock.patch.object(LambdaSimpleBackend, "invoke", p.invoke_factory()):
            yield p
    finally:
        p.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, alive or reaped (from /proc/*/stat)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))  # ppid, ticks + children's
    tree = {pid}
    for _ in range(8):  # container -> worker pool -> janitor: a few levels
        tree |= {p for p, (ppid, _) in stats.items() if ppid in tree}
    total = sum(stats[p][1] for p in tree if p in stats)
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(1800)
def test_the_functions_redact_a_clip_on_arm64(arm64_pipeline, media, tmp_path):
    p, t0 = arm64_pipeline, time.monotonic()
    assert lr.python_version(str(p.containers["plan"].proc.args[0])) == PYTHON_VERSION
    not_ready = {n: c.log_tail() for n, c in p.containers.items() if not c.ready}
    assert not not_ready, f"functions that failed to import on arm64: {not_ready}"
    init_s = time.monotonic() - t0
    init_cpu = {name: cpu_seconds(c.proc.pid) for name, c in p.containers.items()}
    for name, c in p.containers.items():  # each function's process is the arm64 python, run by qemu
        assert Path(os.readlink(f"/proc/{c.proc.pid}/exe")).name.startswith("qemu-aarch64"), name

    clip = media("arm64.mp4", width=320, height=180, seconds=1.0, audio="aac", faces=1, face_size=(60, 80))
    key = "fleet/car 7/arm64.mp4"
    started = p.deliver(p.upload(clip["path"], key))
    assert started["status"] == "started", started
    done = p.wait(started["executionArn"], timeout=1200)
    logs = {n: c.log_tail(1500) for n, c in p.containers.items()}
    assert done["status"] == "SUCCEEDED", (done, p.invocations, logs)
    run_s = time.monotonic() - t0 - init_s

    assert p.keys(p.output) == [f"redacted/{key}", f"redacted/{key}.report.html", f"redacted/{key}.report.json"]
    assert p.keys(p.work, "runs/") == []  # versions/<key hash>.json stays: the key's newest upload (expires)
    out = p.get(p.output, f"redacted/{key}", tmp_path / "out.mp4")
    report = p.get_json(p.output, f"redacted/{key}.report.json")
    assert video_times(str(out)) == video_times(clip["path"])
    assert audio_packets(str(out)) == audio_packets(clip["path"]) and audio_packets(str(out))
    assert report["counts"]["frames"] == clip["frames"] and report["counts"]["segments"] >= 2, report["counts"]
    assert report["counts"]["faces"] > 0, report["counts"]
    assert_faces_blurred(clip, str(out))
    assert report["detector"].get("backend_opencv", 0) > 0, report["detector"]
    redacts = [i for i in p.invocations if i[0] == "redact"]
    assert len(redacts) == report["counts"]["segments"] and all(o == "ok" for *_, o in redacts), p.invocations

    # nothing came from outside each function's path, and the standard library is the arm64 one
    stdlib = str(p.containers["plan"].proc.args[0]).removesuffix("/bin/python3.13")
    for name, c in p.containers.items():
        stats = c.stats()
        assert stats["outside"] == [], (name, stats["outside"])
        assert any(d.startswith(stdlib + "/lib/python3") for d in stats["sys_path"]), (name, stats["sys_path"])
        assert stats["semaphore"].startswith("OSError: [Errno 38]"), (name, stats["semaphore"])
    cpu = {name: f"{init_cpu[name]:.0f} + {cpu_seconds(c.proc.pid) - init_cpu[name]:.0f}"
           for name, c in p.containers.items()}
    print(f"arm64 under emulation: containers ready in {init_s:.0f} s, the run took {run_s:.0f} s "
          f"({report['counts']['segments']} segments, {clip['frames']} frames); CPU s (init + invocations): {cpu}")
