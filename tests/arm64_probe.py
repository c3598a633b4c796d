"""Load every shared library of some Lambda layers, and import some modules from them, in this interpreter.

Run by the arm64 tests under the emulated arm64 python (standard library only; ``-I``: nothing but the stdlib)::

    python3.13 -I tests/arm64_probe.py --import av --import cv2 <layer dir> [<layer dir> ...]

Each layer's ``python/`` goes on ``sys.path`` (as Lambda's ``/opt/python``). Every regular ELF file in the layers,
and every file named like a shared library (``*.so``, ``*.so.*``) whatever its content, is ``dlopen``-ed with
immediate binding (``RTLD_NOW``, as ``ctypes`` does): a library that cannot be mapped, lacks a dependency, or needs
a symbol its dependencies do not define fails here even if no import reaches it. Prints one JSON object: the
machine, how many libraries loaded, and every failure (library or import) with its error; exits 1 if anything
failed. A library that crashes the process (one truncated mid-segment maps past its end: SIGBUS) is named by the
last ``loading <file>`` line on stderr.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import platform
import sys


def elf_files(root: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF" or name.endswith(".so") or ".so." in name:
                    out.append(path)
    return sorted(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--import", dest="modules", action="append", default=[])
    ap.add_argument("layers", nargs="+")
    args = ap.parse_args(argv)
    sys.dont_write_bytecode = True  # the layers stay as built: no __pycache__ written into them
    sys.path[:0] = [os.path.join(layer, "python") for layer in args.layers]
    failures, loaded = {}, 0
    for layer in args.layers:
        for path in elf_files(layer):
            print(f"loading {path}", file=sys.stderr, flush=True)
            try:
                ctypes.CDLL(path)
                loaded += 1
            except OSError as e:
                failures[os.path.relpath(path, layer)] = str(e)
    for module in args.modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - every import failure is reported
            failures[f"import {module}"] = f"{type(e).__name__}: {e}"
    print(json.dumps({"machine": platform.machine(), "python": "%d.%d" % sys.version_info[:2],
                      "libraries_loaded": loaded, "failures": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
