"""HTML report cost: what writing the visual report (--report-html) adds to a 1080p run's wall time.

    .venv/bin/python bench/report_html.py              # 1080p30, 10 s, 4 faces 40-160 px (the throughput clip)
    .venv/bin/python bench/report_html.py --seconds 2  # shorter

Side by side in one run: a fresh child process redacts the clip with default settings and the HTML report
(``redact_file(..., report_html_path=...)``); the engine times the page's rendering (report["timings"]
["report_html"]: demux the output, decode the thumbnails, draw the timeline, encode the page) apart from the
rest of the run, under the same machine load. The page is then rendered twice more from the same output to
show how stable that time is (median of the three). Prints the share the HTML adds to the run's wall time,
and to its CPU time (this process and its workers; less distorted when other processes load the machine).
Target: < 5 %. Writes bench/out/report_html.json; exit code 0 regardless.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

TARGET = 0.05


def child(spec: dict) -> dict:
    from redactor import Config
    from redactor.pipeline import redact_file
    from redactor.report_html import render

    import resource

    def cpu() -> float:  # this process (all threads) + its reaped children (the pool's workers)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + c.ru_utime + c.ru_stime

    out = Path(spec["work"])
    busy0, cpu0 = common.cpu_busy_seconds(), cpu()
    t0 = time.perf_counter()
    report = redact_file(spec["source"], str(out / "out.mp4"), Config(), report_path=str(out / "r.json"),
                         report_html_path=str(out / "r.html"))
    wall = time.perf_counter() - t0
    run_cpu = cpu() - cpu0
    renders, render_cpu = [report["timings"]["report_html"]], []
    for _ in range(2):
        t1, c1 = time.perf_counter(), cpu()
        render(report, str(out / "out.mp4"))
        renders.append(time.perf_counter() - t1)
        render_cpu.append(cpu() - c1)
    own = cpu() - cpu0
    foreign = max(0.0, common.cpu_busy_seconds() - busy0 - own)
    return {"wall": wall, "html_in_run": renders[0], "renders": renders, "run_cpu": run_cpu,
            "render_cpu": render_cpu, "frames": report["counts"]["frames"],
            "html_bytes": (out / "r.html").stat().st_size, "thumbnails": (out / "r.html").read_text().count(
                'data-frame="'), "foreign_load_cores": round(foreign / (time.perf_counter() - t0), 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(child(json.loads(a.child))), flush=True)
        return 0
    common.ensure_model()
    src, _ = common.clip("throughput", width=1920, height=1080, fps=30, seconds=a.seconds, faces=4,
                         face_size=(40, 160))
    work = common.OUT / "report_html"
    work.mkdir(parents=True, exist_ok=True)
    info = common.machine_info()
    proc = subprocess.run([common.PY, str(Path(__file__).resolve()), "--child",
                           json.dumps({"source": src, "work": str(work)})],
                          capture_output=True, text=True, cwd=str(common.ROOT), timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    r = json.loads(lines[-1][len("RESULT "):])
    html = statistics.median(r["renders"])
    run = r["wall"] - r["html_in_run"]  # the run without its HTML report
    share = r["html_in_run"] / run
    verdict = "met" if share < TARGET else "NOT met"
    common.log(f"[run] {r['frames']} frames, {r['wall']:.2f}s wall with the HTML report; HTML in the run "
               f"{r['html_in_run']:.3f}s, re-rendered {', '.join(f'{x:.3f}s' for x in r['renders'][1:])}; "
               f"page {r['html_bytes'] / 1e3:.0f} kB with {r['thumbnails']} thumbnails")
    # CPU time is less distorted by other processes than wall time on a shared machine: also print that share
    html_cpu = statistics.median(r["render_cpu"])
    share_cpu = html_cpu / (r["run_cpu"] - html_cpu)
    noisy = common.noise_note([r])
    print(f"SUMMARY report_html: the HTML report adds {100 * share:.1f} % to a 1080p run's wall time "
          f"({r['html_in_run']:.2f}s of {run:.1f}s; median of 3 renders {html:.2f}s = {100 * html / run:.1f} %) "
          f"and {100 * share_cpu:.1f} % to its CPU time ({html_cpu:.2f} of {r['run_cpu'] - html_cpu:.1f} "
          f"CPU-s); target < {100 * TARGET:.0f} % -- {verdict}{noisy}")
    common.write_result("report_html", {"machine": info, "result": r, "share": share, "share_median": html / run,
                                        "share_cpu": share_cpu, "target": TARGET, "loadavg_after": os.getloadavg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
