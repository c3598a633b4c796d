"""Which glibc a layer needs: the ``GLIBC_x.y`` symbol versions its ELF files require, read from their headers.

A shared library records every versioned symbol it takes from another library in its version-needed section
(``SHT_GNU_verneed``, what ``readelf -V`` prints under ``.gnu.version_r``): e.g. ``libc.so.6: GLIBC_2.17,
GLIBC_2.28``. The dynamic loader refuses a library needing a version the system's glibc does not define, so a
layer loads on Lambda only if none of its files needs a ``GLIBC_`` version above Lambda's glibc (2.34 on Amazon
Linux 2023, the python3.12/3.13 runtimes' OS). Emulating arm64 with a newer userland cannot show that; this can.

    python layers/glibc.py layers/build/ffmpeg ...   # print the highest GLIBC_ version each layer needs
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

LAMBDA_GLIBC = (2, 34)
SHT_GNU_VERNEED = 0x6FFFFFFE


def version_needs(path: Path) -> dict[str, list[str]] | None:
    """{needed file: [version names]} from a little-endian ELF64 file's version-needed section; None if ``path``
    is not such a file. A file without versioned imports gives {}."""
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        data = head + f.read()
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out: dict[str, list[str]] = {}
    for _name, sh_type, _flags, _addr, offset, _size, link, count, _align, _entsize in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        strings = sections[link][4]

        def string(at: int) -> str:
            start = strings + at
            return data[start:data.index(b"\0", start)].decode("ascii", "replace")

        entry = offset
        for _ in range(count):  # Elf64_Verneed: vn_version, vn_cnt, vn_file, vn_aux, vn_next
            _version, n_aux, file_at, aux_at, next_at = struct.unpack_from("<HHIII", data, entry)
            names, aux = out.setdefault(string(file_at), []), entry + aux_at
            for _ in range(n_aux):  # Elf64_Vernaux: vna_hash, vna_flags, vna_other, vna_name, vna_next
                _hash, _flags, _other, name_at, aux_next = struct.unpack_from("<IHHII", data, aux)
                names.append(string(name_at))
                aux += aux_next
            if not next_at:
                break
            entry += next_at
    return out


def glibc_version(name: str) -> tuple[int, ...] | None:
    """``GLIBC_2.28`` -> (2, 28); None for any other version name (``GLIBC_PRIVATE``, ``GLIBCXX_3.4``, ...)."""
    if not name.startswith("GLIBC_"):
        return None
    try:
        return tuple(int(p) for p in name[len("GLIBC_"):].split("."))
    except ValueError:
        return None


def glibc_needed(path: Path) -> tuple[int, ...] | None:
    """The highest ``GLIBC_`` version an ELF file needs (None: not ELF64, or no glibc version needed)."""
    needs = version_needs(path) or {}
    found = [v for names in needs.values() for v in map(glibc_version, names) if v]
    return max(found, default=None)


def elf_files(root: Path) -> list[Path]:
    """Every regular ELF file under ``root`` (by its magic, not its name; symlinks not followed)."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def above(root: Path, ceiling: tuple[int, ...] = LAMBDA_GLIBC) -> dict[str, str]:
    """{file relative to root: GLIBC_ version} for every ELF file under ``root`` that needs more than ``ceiling``."""
    bad = {}
    for p in elf_files(root):
        need = glibc_needed(p)
        if need and need > ceiling:
            bad[str(p.relative_to(root))] = "GLIBC_" + ".".join(map(str, need))
    return bad


def main(argv: list[str]) -> int:
    report, failed = {}, False
    for root in map(Path, argv):
        needs = [v for v in map(glibc_needed, elf_files(root)) if v]
        top = max(needs, default=None)
        report[str(root)] = {"elf_files": len(elf_files(root)), "max_glibc": "GLIBC_" + ".".join(map(str, top))
                             if top else None, "above_lambda": above(root)}
        failed |= bool(report[str(root)]["above_lambda"])
    print(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
