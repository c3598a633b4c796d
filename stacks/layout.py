"""Which layers each function gets (plain data, shared by the stack and the layer-size test)."""
from __future__ import annotations

FUNCTIONS = ("start", "plan", "redact", "stitch", "record_failure")  # + "faces" with detector=rekognition-video

FUNCTION_LAYERS: dict[str, tuple[str, ...]] = {
    "start": ("deps", "engine"),
    "plan": ("deps", "engine", "ffmpeg"),
    "redact": ("deps", "engine", "ffmpeg", "vision"),
    "stitch": ("deps", "engine", "ffmpeg", "report"),
    "record_failure": ("deps", "engine"),
    "faces": ("deps", "engine"),  # only with detector=rekognition-video
}

LAYER_DESCRIPTIONS = {
    "deps": "Powertools for AWS Lambda + AWS X-Ray SDK (arm64)",
    "engine": "redactor engine package + handler helpers",
    "ffmpeg": "PyAV with its bundled FFmpeg libraries (arm64)",
    "vision": "OpenCV headless + numpy + CenterFace model at /opt/model (arm64)",
    "report": "Pillow for the HTML report's pictures (arm64)",
}

MODEL_PATH_ON_LAMBDA = "/opt/model/centerface.onnx"
