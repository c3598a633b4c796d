"""Layers and the five thin Lambda handlers (arm64, Powertools, X-Ray, explicit log groups)."""
from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from layers import build as layer_build

from . import access
from .layout import FUNCTION_LAYERS, LAYER_DESCRIPTIONS, MODEL_PATH_ON_LAMBDA
from .settings import Settings
from .storage import Storage, removal_policy

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = {"3.12": lambda_.Runtime.PYTHON_3_12, "3.13": lambda_.Runtime.PYTHON_3_13}


class LayersNotBuilt(RuntimeError):
    pass


def layer_dir(name: str, placeholder: bool) -> Path:
    if name == "engine":
        return layer_build.stage_engine()
    if placeholder:
        return layer_build.placeholder(name)
    if not layer_build.is_built(name):
        raise LayersNotBuilt(
            f"the {name} layer is not built: run `python layers/build.py` first "
            f"(or synth with `-c placeholder_layers=true` for a template-only synth; never deploy that)")
    return layer_build.BUILD / name


class Functions(Construct):
    def __init__(self, scope: Construct, cid: str, *, settings: Settings, storage: Storage) -> None:
        super().__init__(scope, cid)
        runtime = RUNTIMES[settings.python_version]
        self.layers = self._layers(settings, runtime)

        buckets = {"RAW_BUCKET": storage.raw.bucket_name, "WORK_BUCKET": storage.work.bucket_name,
                   "OUTPUT_BUCKET": storage.output.bucket_name}
        engine_env = dict(settings.engine_environment, REDACTOR_MODEL_PATH=MODEL_PATH_ON_LAMBDA)

        make = self._maker(settings, runtime)
        self.plan = make("plan", memory=settings.plan_memory_mb, timeout=settings.plan_timeout_seconds,
                         ephemeral=settings.plan_ephemeral_mb, env={**buckets, **engine_env},
                         description="Plan segments: probe the upload and write the segment manifest")
        self.redact = make("redact", memory=settings.redact_memory_mb, timeout=settings.redact_timeout_seconds,
                           ephemeral=settings.redact_ephemeral_mb, env={**buckets, **engine_env},
                           description="Redact one segment with every vCPU and write its part")
        self.stitch = make("stitch", memory=settings.stitch_memory_mb, timeout=settings.stitch_timeout_seconds,
                           ephemeral=settings.stitch_ephemeral_mb, env={**buckets, **engine_env},
                           description="Stitch parts + original audio into the output bucket, with a report")
        self.record_failure = make("record_failure", memory=settings.small_memory_mb, timeout=120,
                                   env={"WORK_BUCKET": buckets["WORK_BUCKET"],
                                        "OUTPUT_BUCKET": buckets["OUTPUT_BUCKET"]},
                                   description="Record failure: write failed/<key>.json, delete partial parts")
        # the starter gets STATE_MACHINE_ARN once the workflow exists (see redactor_stack.py)
        self.start = make("start", memory=settings.small_memory_mb, timeout=30,
                          env={"RAW_BUCKET": buckets["RAW_BUCKET"]},
                          description="Start one workflow run per uploaded object version (idempotent)")
        self.all = {"start": self.start, "plan": self.plan, "redact": self.redact, "stitch": self.stitch,
                    "record_failure": self.record_failure}

        self._grant_s3(storage)
        self._detector_access(settings, storage, make, buckets)

    def _layers(self, settings: Settings, runtime: lambda_.Runtime) -> dict[str, lambda_.LayerVersion]:
        """One layer version per layer of layout.LAYER_DESCRIPTIONS (the engine layer staged at every synth)."""
        layers: dict[str, lambda_.LayerVersion] = {}
        for name, description in LAYER_DESCRIPTIONS.items():
            layers[name] = lambda_.LayerVersion(
                self, f"{name.capitalize()}Layer",
                code=lambda_.Code.from_asset(str(layer_dir(name, settings.placeholder_layers))),
                compatible_runtimes=[runtime],
                compatible_architectures=[lambda_.Architecture.ARM_64],
                description=description,
                removal_policy=RemovalPolicy.DESTROY,
            )
        return layers

    def _maker(self, settings: Settings, runtime: lambda_.Runtime):
        """``make(name, ...)``: one handler's function (arm64, its layers, X-Ray, JSON logs to its own log
        group, Powertools' service and namespace), its code lambdas/<name>/."""
        removal = removal_policy(settings)

        def make(name: str, *, memory: int, timeout: int, ephemeral: int = 512, env: dict[str, str],
                 description: str) -> lambda_.Function:
            construct_id = "".join(part.capitalize() for part in name.split("_"))
            log_group = logs.LogGroup(
                self, f"{construct_id}Logs",
                retention=retention(settings.log_retention_days),
                removal_policy=removal,
            )
            fn = lambda_.Function(
                self, construct_id,
                description=description,
                runtime=runtime,
                architecture=lambda_.Architecture.ARM_64,
                handler="handler.handler",
                code=lambda_.Code.from_asset(str(ROOT / "lambdas" / name), exclude=["__pycache__", "*.pyc"]),
                layers=[self.layers[layer] for layer in FUNCTION_LAYERS[name]],
                memory_size=memory,
                timeout=Duration.seconds(timeout),
                ephemeral_storage_size=Size.mebibytes(ephemeral),
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
                logging_format=lambda_.LoggingFormat.JSON,
                environment={
                    "POWERTOOLS_SERVICE_NAME": f"redactor-{name.replace('_', '-')}",
                    "POWERTOOLS_METRICS_NAMESPACE": "Redactor",
                    "POWERTOOLS_LOG_LEVEL": "INFO",
                    **env,
                },
            )
            return fn

        return make

    def _detector_access(self, settings: Settings, storage: Storage, make, buckets: dict[str, str]) -> None:
        """Rekognition: only the actions the selected detector calls, only on the functions that call them (and,
        with detector=rekognition-video, the faces function). None of these actions supports resource-level
        permissions, so their statements name Resource "*"."""
        self.faces: lambda_.Function | None = None
        if settings.detector == "rekognition":
            self.redact.add_to_role_policy(iam.PolicyStatement(
                sid="RekognitionDetectFaces", actions=["rekognition:DetectFaces"], resources=["*"]))
        if settings.detector == "rekognition-video":
            self.faces = make("faces", memory=1024, timeout=900, env={
                "RAW_BUCKET": buckets["RAW_BUCKET"], "WORK_BUCKET": buckets["WORK_BUCKET"],
                **settings.engine_environment},
                description="Face detection job: StartFaceDetection on the upload, poll it, save its results")
            self.all["faces"] = self.faces
            self.faces.add_to_role_policy(iam.PolicyStatement(
                sid="RekognitionVideoFaceDetection",
                actions=["rekognition:StartFaceDetection", "rekognition:GetFaceDetection"], resources=["*"]))
            # Rekognition Video reads the object with the caller's permissions: the faces function's role
            raw, work = storage.raw, storage.work
            access.read(raw, self.faces)
            access.read(work, self.faces, "runs/*/plan.json", versions=False)
            access.write(work, self.faces, "runs/*/faces.json")
            access.read(work, self.redact, "runs/*/faces.json", versions=False)

    def _grant_s3(self, storage: Storage) -> None:
        """The exact S3 actions each handler calls, each function only on its prefixes (see access.py); the
        work bucket is not versioned: its readers get no GetObjectVersion."""
        raw, work, output = storage.raw, storage.work, storage.output
        access.list_bucket(raw, self.start)  # HeadObject of a missing key answers 404 (not 403)
        access.read(raw, self.start)  # HeadObject to resolve the key and its version
        access.read(raw, self.plan)
        access.write(work, self.plan, "runs/*")
        access.read(raw, self.redact)
        # the upload's probed facts, written by Plan
        access.read(work, self.redact, "runs/*/source.json", versions=False)
        access.write(work, self.redact, "runs/*")
        access.read(raw, self.stitch)
        access.list_bucket(work, self.stitch, "runs/*")
        access.read(work, self.stitch, "runs/*", versions=False)
        access.delete(work, self.stitch, "runs/*")
        access.write(output, self.stitch, "redacted/*")
        access.delete_versions(output, self.stitch, "redacted/*")  # its own versions, when a newer upload won
        # which upload of a key owns its outputs (lambdas/common/versions.py), claimed with conditional writes
        access.read_write(work, self.stitch, "versions/*")
        access.read_write(work, self.record_failure, "versions/*")
        # a successful run removes the failure record an earlier run of the same key left (list, then delete)
        access.list_bucket(output, self.stitch, "failed/*")
        access.delete(output, self.stitch, "failed/*")
        access.list_bucket(work, self.record_failure, "runs/*")
        access.read(work, self.record_failure, "runs/*", versions=False)
        access.write(work, self.record_failure, "runs/*/errors/*")  # a failed segment's error and cause
        access.delete(work, self.record_failure, "runs/*")
        access.write(output, self.record_failure, "failed/*")


_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                   3288, 3653)


def retention(days: int) -> logs.RetentionDays:
    members = [m for m in logs.RetentionDays if m.name != "INFINITE"]
    return dict(zip(_RETENTION_DAYS, members))[days]
