"""Inference runtimes for an ONNX face model: OpenCV DNN (always there: OpenCV is a core dependency, and it is
what the Lambda layer runs) and OpenVINO (optional, faster on x86). A model backend asks ``make_net`` for one
and calls ``run(blob, fixed)``; nothing here knows which model it runs."""
from __future__ import annotations

import importlib.util

import numpy as np

from ..errors import ModelError


class OpenCVNet:
    """The model in OpenCV DNN."""

    name = "opencv"

    def __init__(self, path: str, outputs: list[str]):
        import cv2

        self.net = cv2.dnn.readNetFromONNX(path)
        self.outputs = outputs  # OpenCV 5 wants every output named

    def set_threads(self, threads: int) -> None:
        import cv2

        cv2.setNumThreads(max(1, int(threads)))

    def run(self, blob: np.ndarray, fixed: bool = True) -> tuple[np.ndarray, ...]:
        self.net.setInput(blob)
        return tuple(self.net.forward(self.outputs))


class OpenVINONet:
    """The same ONNX model in OpenVINO's CPU runtime: 2.2-2.6x faster than OpenCV DNN per inference on this
    machine (README "Speed"). Whole-frame sizes get a model compiled for their exact shape; track windows
    (sizes vary) share one dynamic-shape compilation. Threads are not pinned to cores, so several worker
    processes share a machine."""

    name = "openvino"
    MAX_FIXED = 8

    def __init__(self, path: str, outputs: list[str]):
        import openvino as ov

        self.ov = ov
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.outputs = list(outputs)
        self.threads = 1
        self._compiled: dict = {}

    def set_threads(self, threads: int) -> None:
        threads = max(1, int(threads))
        if threads != self.threads:
            self.threads = threads
            self._compiled.clear()

    def _request(self, shape: tuple | None):
        req = self._compiled.get(shape)
        if req is None:
            if shape is not None and sum(1 for s in self._compiled if s is not None) >= self.MAX_FIXED:
                return self._request(None)
            model = self.model.clone()
            dims = list(shape) if shape is not None else [1, 3, -1, -1]
            model.reshape({model.inputs[0]: self.ov.PartialShape(dims)})
            compiled = self.core.compile_model(model, "CPU", {
                "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                "ENABLE_CPU_PINNING": False})
            req = (compiled.create_infer_request(), [compiled.output(n) for n in self.outputs])
            self._compiled[shape] = req
        return req

    def run(self, blob: np.ndarray, fixed: bool = True) -> tuple[np.ndarray, ...]:
        request, outs = self._request(tuple(blob.shape) if fixed else None)
        result = request.infer({0: blob})
        return tuple(result[o] for o in outs)


BACKENDS = {"opencv": OpenCVNet, "openvino": OpenVINONet}


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def make_net(path: str, inference: str, outputs: list[str]):
    """The inference runtime for ``inference`` (auto: OpenVINO when installed, else OpenCV DNN)."""
    if inference == "auto":
        inference = "openvino" if openvino_available() else "opencv"
    if inference == "openvino" and not openvino_available():
        raise ModelError("inference=openvino but the openvino package is not installed "
                         "(pip install openvino, or use inference=opencv)")
    return BACKENDS[inference](path, outputs)
