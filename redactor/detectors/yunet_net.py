"""YuNet's network and its decoding, as OpenCV's ``cv2.FaceDetectorYN`` runs them, on a plain ``cv2.dnn`` net.

``cv2.FaceDetectorYN.create`` always calls ``Net.setPreferableBackend`` and ``Net.setPreferableTarget``. OpenCV 5's
graph engine, which runs every ONNX model, accepts no target in a build without CUDA (the pip wheels), so each
detector it creates logs "setPreferableTarget Targets are not supported by the new graph engine" -- once per worker
process. This net keeps OpenCV's defaults (CPU) and never asks for a target, so nothing is logged. The decoding is
``FaceDetectorYNImpl::postProcess`` (opencv/modules/objdetect/src/face_detect.cpp) in numpy, in the same float32
operations, with the same NMS, so the faces are the same: rows of (x, y, w, h, 5 landmarks x/y, score).
"""
from __future__ import annotations

import numpy as np

STRIDES = (8, 16, 32)
DIVISOR = 32
OUTPUTS = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]


class YuNetNet:
    """The subset of ``cv2.FaceDetectorYN`` the engine uses: ``setInputSize`` and ``detect``."""

    def __init__(self, model: str, input_size: tuple[int, int], score_threshold: float, nms_threshold: float,
                 top_k: int):
        import cv2

        self.cv2 = cv2
        self.net = cv2.dnn.readNetFromONNX(model)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.setInputSize(input_size)

    def setInputSize(self, input_size: tuple[int, int]) -> None:  # noqa: N802 (FaceDetectorYN's name)
        self.width, self.height = int(input_size[0]), int(input_size[1])
        self.pad_w = ((self.width - 1) // DIVISOR + 1) * DIVISOR
        self.pad_h = ((self.height - 1) // DIVISOR + 1) * DIVISOR

    def detect(self, image: np.ndarray) -> tuple[int, np.ndarray | None]:
        """(1, faces) for a BGR uint8 image of the input size; faces is None when there are none."""
        if image.shape[1] != self.width or image.shape[0] != self.height:
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]}, the input size {self.width}x{self.height}")
        if (self.pad_w, self.pad_h) != (self.width, self.height):
            image = self.cv2.copyMakeBorder(image, 0, self.pad_h - self.height, 0, self.pad_w - self.width,
                                            self.cv2.BORDER_CONSTANT, value=0)
        self.net.setInput(self.cv2.dnn.blobFromImage(image))
        blobs = self.net.forward(OUTPUTS)
        faces = self.decode(blobs)
        return 1, (faces if len(faces) else None)

    def decode(self, blobs) -> np.ndarray:
        """``postProcess``: every grid cell scoring at least the threshold, then NMS over the int boxes."""
        rows = []
        n = len(STRIDES)
        for i, stride in enumerate(STRIDES):
            cols, grid_rows = self.pad_w // stride, self.pad_h // stride
            cls = np.clip(blobs[i].reshape(-1).astype(np.float32), 0.0, 1.0)
            obj = np.clip(blobs[i + n].reshape(-1).astype(np.float32), 0.0, 1.0)
            score = np.sqrt(cls * obj)
            keep = np.flatnonzero(score >= np.float32(self.score_threshold))
            if not len(keep):
                continue
            bbox = blobs[i + 2 * n].reshape(-1, 4).astype(np.float32)[keep]
            kps = blobs[i + 3 * n].reshape(-1, 10).astype(np.float32)[keep]
            c = (keep % cols).astype(np.float32)[:, None]
            r = (keep // cols).astype(np.float32)[:, None]
            s = np.float32(stride)
            if grid_rows * cols != cls.size:
                raise ValueError(f"YuNet output {OUTPUTS[i]} has {cls.size} cells, expected {grid_rows}x{cols}")
            cx = (c[:, 0] + bbox[:, 0]) * s
            cy = (r[:, 0] + bbox[:, 1]) * s
            w = np.exp(bbox[:, 2].astype(np.float64)).astype(np.float32) * s  # expf, correctly rounded
            h = np.exp(bbox[:, 3].astype(np.float64)).astype(np.float32) * s
            face = np.empty((len(keep), 15), np.float32)
            face[:, 0] = cx - w / np.float32(2)
            face[:, 1] = cy - h / np.float32(2)
            face[:, 2] = w
            face[:, 3] = h
            face[:, 4:14:2] = (kps[:, 0::2] + c) * s
            face[:, 5:14:2] = (kps[:, 1::2] + r) * s
            face[:, 14] = score[keep]
            rows.append(face)
        if not rows:
            return np.zeros((0, 15), np.float32)
        faces = np.concatenate(rows)
        if len(faces) < 2:
            return faces
        boxes = [[int(x), int(y), int(w), int(h)] for x, y, w, h in faces[:, :4].tolist()]  # Rect2i truncates
        keep = self.cv2.dnn.NMSBoxes(boxes, faces[:, 14].tolist(), self.score_threshold, self.nms_threshold,
                                     eta=1.0, top_k=self.top_k)
        return faces[np.asarray(keep, dtype=np.int64).reshape(-1)]
