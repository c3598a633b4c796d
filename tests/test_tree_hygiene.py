"""The tracked tree describes what the project is, not how it got there, and its functions stay readable.

History (who changed what, when, in which issue or commit) lives in git and in the issue tracker. These tests
fail on history language in any tracked text file, and on functions in the shipped code (``redactor/``,
``lambdas/``, ``stacks/``) longer than ``MAX_FUNCTION_LINES`` unless allowlisted with a reason.
"""
from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Each pattern is (name, regex, files where it is allowed). The patterns are kept narrow so that they do not hit
# code: hex colours (``color:#222``), SHA-256 digests of models, dates inside test data or IAM policy versions.
HASH = r"[0-9a-f]{7,40}"
HISTORY = [
    ("session number", re.compile(r"\bsessions? [0-9]", re.I), ()),
    ("this/last session", re.compile(r"\b(?:this|that|last|previous|earlier|next) session\b", re.I), ()),
    ("issue number", re.compile(r"\b(?:issue|issues|README|PR) #?[0-9]+\b"), ()),
    ("issue reference", re.compile(r"(?:^|(?<=[\s(\[,]))#[0-9]{1,3}\b(?![0-9a-fA-F;])"), ()),
    ("landed commit", re.compile(r"\blanded " + HASH, re.I), ()),
    ("commit hash in prose",
     re.compile(r"(?:\b(?:commit|commits|main|reverted in|landed|on|before|after|of|from)\s+`?|`)"
                r"(?=[0-9a-f]{0,39}[a-f])(?=[0-9a-f]{0,39}[0-9])" + HASH + r"\^?`?(?![0-9A-Za-z])"),
     ("redactor/models/README.md",)),
    ("was ... until", re.compile(r"\b(?:it|this|that|which) was\b[^.\n]{0,60}\buntil\b|\bwas\b[^.\n]{0,60}"
                                 r"\buntil (?:20[0-9]{2}|now|recently|the (?:change|fix|commit))", re.I), ()),
    ("date of a change", re.compile(r"(?:^|(?<=[\s(,]))20[0-9]{2}-[01][0-9]-[0-3][0-9]\b"),
     ("docs/benchmarks.md", "redactor/models/README.md")),
]
SKIP_FILES = {"tests/test_tree_hygiene.py"}  # holds the patterns themselves
SHA_LINE = re.compile(r"sha-?256", re.I)  # a model's digest is provenance, not history

MAX_FUNCTION_LINES = 80
# qualified name -> (the most lines it may have, why it is longer than MAX_FUNCTION_LINES); none today
LONG_FUNCTIONS: dict[str, tuple[int, str]] = {}


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in out.decode().split("\0"):
        if not name or name in SKIP_FILES or Path(name).name.upper().startswith("CHANGELOG"):
            continue
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (the vendored model)
        files.append(path)
    return files


def history_hits(rel: str, text: str) -> list[str]:
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for name, pattern, allowed in HISTORY:
            if rel in allowed or (name == "commit hash in prose" and SHA_LINE.search(line)):
                continue
            m = pattern.search(line)
            if m:
                hits.append(f"{rel}:{lineno}: {name}: {m.group(0)!r} in {line.strip()[:120]!r}")
    return hits


def test_the_tree_speaks_of_the_product_not_its_history():
    hits = []
    for path in tracked_text_files():
        rel = path.relative_to(ROOT).as_posix()
        hits += history_hits(rel, path.read_text(encoding="utf-8", errors="replace"))
    assert not hits, "history language in the tree (it belongs in git and the issues):\n" + "\n".join(hits)


@pytest.mark.parametrize("line", [
    # spelled in two parts so that this file itself holds no such phrase
    "as measured in sess" + "ion 9", "see iss" + "ue #12", "(#15: a half face)", "lan" + "ded 85a7884",
    "on main `e84cee2`",
    "it was 1x until the change", "dropped on 2026-12-03", "the code before `9f4936a`", "README #15",
])
def test_the_history_patterns_catch_history(line):
    assert history_hits("x.md", line)


@pytest.mark.parametrize("line", [
    "body{color:#222;max-width:1100px}", ".flag{color:#d73027}", "SHA-256 `104ee26c…4c2b12`",
    '"Version": "2012-10-17"', 'execution_name("raw", "fleet/car 7/2024-05-01 dash cam.MP4")',
    "frames = 0x7fffffff  # all of them", "seek to frame 30 of 120", "wait until the part was written",
    "hand-over of 12 frames", "item 3 of the plan", "keeps what was published until the run ends",
])
def test_the_history_patterns_leave_code_alone(line):
    assert not history_hits("x.py", line)


def long_functions() -> dict[str, int]:
    found = {}
    for root in ("redactor", "lambdas", "stacks"):
        for path in sorted((ROOT / root).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()

            def walk(node, prefix=""):
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        lines = child.end_lineno - child.lineno + 1
                        if lines > MAX_FUNCTION_LINES:
                            found[f"{rel}::{prefix}{child.name}"] = lines
                        walk(child, f"{prefix}{child.name}.")
                    elif isinstance(child, ast.ClassDef):
                        walk(child, f"{prefix}{child.name}.")

            walk(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_functions_stay_short_or_say_why_not():
    bad = []
    for name, lines in long_functions().items():
        allowed = LONG_FUNCTIONS.get(name)
        if allowed is None:
            bad.append(f"{name}: {lines} lines (at most {MAX_FUNCTION_LINES}; split it, or allowlist it with a reason)")
        elif lines > allowed[0]:
            bad.append(f"{name}: {lines} lines, allowlisted up to {allowed[0]} ({allowed[1]})")
    assert not bad, "\n".join(bad)
