"""Build the arm64 layers for real (pip, no Docker) and check every function fits Lambda's 250 MB unzipped limit.

The first run downloads ~90 MB of wheels (cached in $REDACTOR_PIP_CACHE, default ~/.cache/redactor/pip); later
runs reuse the built layers while their recipe is unchanged (layers/build/.<name>.stamp).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import aws_support as aws

pytestmark = pytest.mark.slow

LIMIT_BYTES = 250 * 1000 * 1000  # Lambda: 250 MB unzipped, function code + all layers (checked conservatively)
EM_AARCH64 = 183


@pytest.fixture(scope="module")
def built():
    from layers import build

    for name in build.PIP_LAYERS:
        build.build_layer(name, aws.cdk_context()["python_version"])
    build.stage_engine()
    return build


def _elf_machine(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little")


def test_layers_are_arm64_cp313_and_trimmed(built):
    root = built.BUILD
    for name in built.PIP_LAYERS:
        site = root / name / "python"
        assert site.is_dir()
        for banned in ("boto3", "botocore", "s3transfer"):
            assert not (site / banned).exists(), f"{name} ships {banned}"
        assert not list(site.rglob("__pycache__")), name
        assert not [p for p in site.rglob("tests") if p.is_dir()], name
        for so in list(site.rglob("*.so")) + list(site.rglob("*.so.*")):
            if so.is_file() and not so.is_symlink():
                assert _elf_machine(so) in (EM_AARCH64, None), f"{so} is not aarch64"
    ffmpeg = root / "ffmpeg" / "python"
    assert (ffmpeg / "av").is_dir() and list((ffmpeg / "av.libs").glob("libavcodec*"))
    vision = root / "vision" / "python"
    assert (vision / "cv2").is_dir() and (vision / "numpy").is_dir()
    assert list(vision.glob("numpy/_core/_multiarray_umath.cpython-313-aarch64-linux-gnu.so"))
    report = root / "report" / "python"
    assert (report / "PIL").is_dir() and list((report / "PIL").glob("_imaging.cpython-313-aarch64-linux-gnu.so"))
    deps = root / "deps" / "python"
    assert (deps / "aws_lambda_powertools").is_dir() and (deps / "aws_xray_sdk").is_dir()
    engine = root / "engine" / "python"
    assert (engine / "redactor" / "__init__.py").is_file() and (engine / "redactor" / "naming.py").is_file()
    assert (engine / "common" / "versions.py").is_file()
    assert not (engine / "testmedia").exists() and not (engine / "redactor" / "synth.py").exists()


def test_layer_libraries_are_loadable(built):
    """Every shared library keeps each LOAD segment's file offset congruent to its address (what the dynamic
    loader checks): llvm-strip broke this for PyAV's and OpenCV's patchelf'ed libraries, and `import av` failed
    ("ELF load command address/offset not page-aligned"). aarch64 cannot be loaded here, so this is checked on
    the program headers; tests/test_deployed_runtime.py loads the host build for real."""
    bad = []
    for name in built.PIP_LAYERS:
        for so in (built.BUILD / name / "python").rglob("*.so*"):
            if so.is_file() and not so.is_symlink() and built.elf_load_segments_aligned(so) is False:
                bad.append(str(so.relative_to(built.BUILD)))
    assert bad == [], f"{len(bad)} libraries would fail to load: {bad[:5]}"


def test_no_library_keeps_debug_sections_between_its_segments(built, tmp_path):
    """patchelf (auditwheel) appends LOAD segments after a manylinux library's debug info and symbol tables, so
    llvm-strip could not remove those safely (it moved the segments off their alignment) and they stayed: 25 MB
    in PyAV's modules, 5 MB in numpy's OpenBLAS and OpenCV's libraries, all in the redact function. The build
    cuts them out (``_drop_debug_sections``), keeping every segment byte-identical at a congruent offset; a
    second pass over a copy of every built library finds nothing left to cut."""
    left = {}
    for name in built.PIP_LAYERS:
        for so in (built.BUILD / name / "python").rglob("*.so*"):
            if so.is_file() and not so.is_symlink():
                copy = tmp_path / so.name
                shutil.copyfile(so, copy)
                saved = built._drop_debug_sections(copy)
                if saved:
                    left[str(so.relative_to(built.BUILD))] = saved
                copy.unlink()
    assert not left, f"{len(left)} libraries keep {sum(left.values()) / 1e6:.1f} MB of debug sections: {list(left)[:5]}"


def test_vision_layer_carries_the_verified_model(built):
    from redactor.model import MODEL_SHA256, sha256_file

    model = built.BUILD / "vision" / built.MODEL_RELPATH
    assert model.is_file() and sha256_file(model) == MODEL_SHA256
    from stacks.layout import MODEL_PATH_ON_LAMBDA

    assert MODEL_PATH_ON_LAMBDA == "/opt/" + built.MODEL_RELPATH


def test_every_function_with_its_layers_fits_the_lambda_limit(built, tmp_path):
    """Synthesize with the real layers and add up what each function's template entry references."""
    assembly, _ = aws.synth(str(tmp_path), nag=False, placeholder_layers=False)
    t = assembly.get_stack_by_name("Redactor").template
    outdir = Path(assembly.directory)
    sizes = {}
    for name in ("start", "plan", "redact", "stitch", "record_failure"):
        _, fn = aws.function_by_service(t, name)
        code = built.dir_size(outdir / fn["Metadata"]["aws:asset:path"])
        layers = {}
        for ref in fn["Properties"]["Layers"]:
            layer = t["Resources"][ref["Ref"]]
            layers[layer["Properties"]["Description"].split(" (")[0]] = built.dir_size(
                outdir / layer["Metadata"]["aws:asset:path"])
        total = code + sum(layers.values())
        sizes[name] = {"total_mb": built.mb(total), "code_mb": built.mb(code),
                       "layers_mb": {k: built.mb(v) for k, v in layers.items()}}
        assert total <= LIMIT_BYTES, f"{name}: {total / 1e6:.1f} MB unzipped > 250 MB"
    sizes["layers_unzipped_mb"] = built.sizes()
    report = json.dumps(sizes, indent=1)
    print(report)
    (built.BUILD / "sizes.json").write_text(report)
    assert sizes["redact"]["total_mb"] > sizes["stitch"]["total_mb"] > sizes["start"]["total_mb"]
    # Pillow (the HTML report) only where the report is written
    pillow = "Pillow for the HTML report's pictures"
    assert pillow in sizes["stitch"]["layers_mb"] and pillow not in sizes["redact"]["layers_mb"]


def _python(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}"), f"/usr/bin/python{version}",
                  *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))]
    for c in candidates:
        if c and Path(c).exists() and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0:
            return c
    return None


def test_pure_python_layers_import_on_the_lambda_python(built):
    """deps + engine import under CPython 3.13 with nothing else on sys.path (the compiled layers are arm64
    and cannot run on this x86 host)."""
    py = _python("3.13")
    if not py:
        pytest.skip("no working python3.13 here")
    paths = [str(built.BUILD / "deps" / "python"), str(built.BUILD / "engine" / "python")]
    code = ("import sys; sys.path[:0] = %r\n"
            "from aws_lambda_powertools import Logger, Metrics\n"
            "import redactor, redactor.records, redactor.config, redactor.errors\n"
            "from redactor import naming\n"
            "assert naming.execution_name('b', 'k.mp4', 'v').startswith('k-mp4-')\n"
            "print('ok')" % paths)
    proc = subprocess.run([py, "-S", "-B", "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
