"""An arm64 CPython for running the arm64 Lambda layers on an x86 machine: qemu user-mode emulation plus an arm64
Debian userland unpacked into a directory (no Docker, no foreign packages installed into the system).

    python tests/arm64_sysroot.py            # build the sysroot (cached: a second run downloads nothing)
    python tests/arm64_sysroot.py --binfmt   # also let the kernel hand arm64 programs to qemu (root only)
    sudo python3 tests/arm64_sysroot.py --binfmt-only   # only that (a user's own sysroot stays in their home)

The sysroot holds Debian's arm64 ``python3.13`` (the Lambda runtime's CPython version) and the libraries it and the
layers' wheels need from the system (libc6, libstdc++6, libgcc-s1, ...), fetched with ``apt-get download`` from this
machine's own Debian mirror (``Suite`` of ``trixie``) and unpacked with ``dpkg -x``. It is cached under
``$REDACTOR_ARM64_SYSROOT`` (default ``~/.cache/redactor/arm64-sysroot``) with a stamp of its recipe; a build goes
to a temporary folder beside it and replaces it only once its python runs.

Running it: ``qemu-aarch64-static -L <root> <root>/usr/bin/python3.13`` covers one process. The engine execs
``sys.executable`` (its janitor process), and an exec of an arm64 program needs the kernel's binfmt_misc entry for
aarch64 (``/usr/lib/binfmt.d/qemu-aarch64.conf`` from the ``qemu-user-static`` package) and ``QEMU_LD_PREFIX=<root>``
in the environment; :func:`ensure_binfmt` registers that entry (root only). With it, ``<root>/usr/bin/python3.13``
runs like a native program (:func:`interpreter_env`).

Only the standard library is used here: ``.ci/run`` and the tests call it before anything else is set up.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SUITE = "trixie"  # Debian 13: python3.13, the Lambda runtime's CPython version
PYTHON = "usr/bin/python3.13"
#: python3.13 and what its standard library links, plus the system libraries the layers' manylinux wheels may
#: take from the OS (libc, libm, libpthread, libdl, librt, libgcc_s, libstdc++, libz): nothing more, so that a
#: layer needing another system library fails here as it would on Lambda.
PACKAGES = (
    "python3.13-minimal", "libpython3.13-minimal", "libpython3.13-stdlib", "libc6", "libgcc-s1", "libstdc++6",
    "zlib1g", "libexpat1", "libssl3t64", "libffi8", "libbz2-1.0", "liblzma5", "libzstd1", "libsqlite3-0",
    "libuuid1", "libmpdec4", "libncursesw6", "libtinfo6", "libreadline8t64", "libdb5.3t64", "libcrypt1",
)
QEMU = "qemu-aarch64-static"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class Unavailable(RuntimeError):
    """This machine cannot run arm64 programs (the message says what is missing and how to get it)."""


def sysroot_dir() -> Path:
    default = Path.home() / ".cache" / "redactor" / "arm64-sysroot"
    return Path(os.environ.get("REDACTOR_ARM64_SYSROOT") or default)


def recipe_digest() -> str:
    return hashlib.sha256(json.dumps([SUITE, PACKAGES]).encode()).hexdigest()


def _mirror() -> str:
    """The Debian mirror this machine's apt already uses (deb822 ``.sources`` or a one-line ``sources.list``)."""
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in src.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for src in lists:
        if src.is_file():
            for line in src.read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["deb"] and "security" not in line:
                    return next(p for p in parts[1:] if not p.startswith("["))
    return "http://deb.debian.org/debian"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _download(work: Path) -> list[Path]:
    """The arm64 .deb files of PACKAGES from the suite, through apt with its own lists/cache under ``work``."""
    for d in ("lists/partial", "cache/archives/partial", "debs"):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "status").touch()
    (work / "sources.list").write_text(f"deb [arch=arm64 signed-by={KEYRING}] {_mirror()} {SUITE} main\n")
    opts = [f"-oDir::Etc::sourcelist={work / 'sources.list'}", "-oDir::Etc::sourceparts=/dev/null",
            f"-oDir::State::Lists={work / 'lists'}", f"-oDir::Cache={work / 'cache'}",
            f"-oDir::State::status={work / 'status'}", "-oAPT::Architecture=arm64", "-oAPT::Architectures=arm64",
            "-oDebug::NoLocking=1", "-qq"]
    _run(["apt-get", *opts, "update"])
    _run(["apt-get", *opts, "download", *PACKAGES], cwd=work / "debs")
    return sorted((work / "debs").glob("*.deb"))


def _unpack(debs: list[Path], root: Path) -> dict[str, str]:
    versions = {}
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        name, version = deb.name.split("_")[:2]
        versions[name] = version.replace("%3a", ":")
    if not (root / "lib").exists():
        (root / "lib").symlink_to("usr/lib")  # the loader's path: /lib/ld-linux-aarch64.so.1
    return versions


def qemu() -> str:
    exe = shutil.which(QEMU)
    if not exe:
        raise Unavailable(f"{QEMU} is missing: `apt-get install qemu-user-static` (Debian/Ubuntu)")
    return exe


def build(force: bool = False) -> Path:
    """The sysroot, built if its stamp is missing or stale (under a lock: parallel callers build it once)."""
    root = sysroot_dir()
    stamp = root / ".stamp"
    if not force and stamp.is_file() and stamp.read_text() == recipe_digest():
        return root
    exe = qemu()
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise Unavailable(f"{tool} is missing: the arm64 sysroot is built from Debian packages")
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and stamp.is_file() and stamp.read_text() == recipe_digest():
            return root  # another process built it meanwhile
        work = root.with_name(root.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        versions = _unpack(_download(work / "apt"), work / "root")
        new = work / "root"
        probe = _run([exe, "-L", str(new), str(new / PYTHON), "-I", "-c",
                      "import platform, sys, ctypes, ssl; print(platform.machine(), '%d.%d' % sys.version_info[:2])"])
        if probe.stdout.split() != ["aarch64", "3.13"]:
            raise RuntimeError(f"the unpacked arm64 python says {probe.stdout!r}, not 'aarch64 3.13'")
        (new / "packages.json").write_text(json.dumps(versions, indent=1, sort_keys=True))
        (new / ".stamp").write_text(recipe_digest())
        shutil.rmtree(root, ignore_errors=True)
        os.replace(new, root)
        shutil.rmtree(work, ignore_errors=True)
    return root


def binfmt_registered() -> bool:
    entry = BINFMT_DIR / "qemu-aarch64"
    return entry.is_file() and entry.read_text().splitlines()[:1] == ["enabled"]


def ensure_binfmt() -> None:
    """Let the kernel run arm64 programs through qemu (so an arm64 python can exec another). Root only."""
    if binfmt_registered():
        return
    if not BINFMT_CONF.is_file():
        raise Unavailable(f"{BINFMT_CONF} is missing: `apt-get install qemu-user-static` (Debian/Ubuntu)")
    if os.geteuid() != 0:
        raise Unavailable("arm64 programs cannot exec each other here: registering qemu with binfmt_misc "
                          f"needs root (or register {BINFMT_CONF} once as root)")
    if not (BINFMT_DIR / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)])
    (BINFMT_DIR / "register").write_text(BINFMT_CONF.read_text().strip())
    if not binfmt_registered():
        raise Unavailable(f"registering {BINFMT_CONF} with binfmt_misc did not enable it")


def interpreter_env(root: Path) -> dict[str, str]:
    """What an environment needs so that ``<root>/usr/bin/python3.13`` and its children run (with binfmt)."""
    return {"QEMU_LD_PREFIX": str(root)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binfmt", action="store_true", help="also register qemu-aarch64 with binfmt_misc (root)")
    ap.add_argument("--binfmt-only", action="store_true", help="only register qemu-aarch64 (root); build nothing")
    ap.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    root = sysroot_dir() if args.binfmt_only else build(force=args.force)
    if args.binfmt or args.binfmt_only:
        ensure_binfmt()
    print(json.dumps({"sysroot": str(root), "python": str(root / PYTHON), "binfmt": binfmt_registered(),
                      "seconds": round(time.monotonic() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
