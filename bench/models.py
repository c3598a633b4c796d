"""Per-inference cost of the local face models side by side, one thread, at the model sizes the engine
infers: YuNet-n vs CenterFace, both in OpenCV DNN (the Lambda layer's runtime and the engine's only one).

    .venv/bin/python bench/models.py              # 640x352, 960x544, 1920x1088; 5 rounds
    options: --reps N

Each round times one inference of every (model, size) on the same astronaut image scaled to that size, the
order alternating; the median per (model, size) is printed with the ratio. YuNet is ``YuNetNet``
(``cv2.FaceDetectorYN``'s network and decoding), CenterFace ``cv2.dnn`` + its decoding, as the engine runs them. Absolute times
depend on the machine's load, the ratios much less. Writes bench/out/models.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as common  # noqa: E402

SIZES = ((640, 352), (960, 544), (1920, 1088))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args(argv)
    import cv2
    import numpy as np
    from skimage import data

    from redactor import Config
    from redactor.detectors import CenterFace, YuNet

    cv2.setNumThreads(1)
    machine = common.machine_info()
    model = common.ensure_model()
    yunet = YuNet(Config(detector="yunet"))
    rgb = data.astronaut()
    run = {"centerface": CenterFace(Config(model_path=model)).detect_rgb,
           "yunet": lambda img, w, h: yunet.detect_bgr(np.ascontiguousarray(img[:, :, ::-1]))}
    times: dict = {(m, s): [] for m in run for s in SIZES}
    for rep in range(a.reps + 1):  # round 0 warms up (the first inference at a size allocates)
        for w, h in SIZES:
            img = cv2.resize(rgb, (w, h))
            for m in (list(run) if rep % 2 else list(reversed(list(run)))):
                t = time.perf_counter()
                run[m](img, w, h)
                if rep:
                    times[(m, (w, h))].append((time.perf_counter() - t) * 1000)
    out = []
    for w, h in SIZES:
        ms = {f"{m}_opencv_ms": round(statistics.median(times[(m, (w, h))]), 1) for m in run}
        row = {"size": f"{w}x{h}", **ms}
        cf, yn = ms["centerface_opencv_ms"], ms["yunet_opencv_ms"]
        row["centerface_over_yunet_opencv"] = round(cf / yn, 2)
        line = f"{w}x{h}: OpenCV DNN: CenterFace {cf:.0f} ms, YuNet {yn:.0f} ms -> YuNet {cf / yn:.1f}x cheaper"
        out.append(row)
        print(line)
    print(f"load average before: {machine.get('loadavg_before')} on {machine.get('usable_cores')} cores")
    common.write_result("models", {"reps": a.reps, "threads": 1, "machine": machine, "results": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
