"""moto in server mode on 127.0.0.1 (a free port): real HTTP between the code under test and moto.

Everything that talks to AWS through boto3 reaches this server when ``AWS_ENDPOINT_URL`` points at it
(``server.env`` holds that and fake credentials); a Lambda run in a fresh interpreter can be given the same
variables. Every request is logged with the bytes of its response body, so a test can prove how much of an
object a handler really read (``bytes_read``), with real HTTP ``Range`` requests.

    from tests.moto_server import moto_server          # the pytest fixture (one server per session)
    def test_x(moto_server):
        s3 = moto_server.client("s3")
        ...
        moto_server.reset_log(); run(); assert moto_server.bytes_read("bucket", "key") < size

or, outside pytest: ``with MotoServer() as server: ...``.
``moto_server.configure(...)`` sets moto's own config (e.g. Step Functions execution, Lambda without
Docker) as ``mock_aws(config=...)`` does in-process; the fixture resets moto's state before each test.
"""
from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote

import pytest

REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing", "AWS_SECURITY_TOKEN": "testing"}


@dataclass
class Request:
    method: str
    path: str  # decoded, without the query string
    query: str
    range: str | None  # the Range header, as sent
    status: int
    bytes_out: int  # response body bytes sent


class _Counting:
    """WSGI middleware: logs every request with the number of body bytes actually sent."""

    def __init__(self, app, log: list, lock: threading.Lock):
        self.app, self.log, self.lock = app, log, lock

    def __call__(self, environ, start_response):
        status = {}

        def start(s, headers, exc_info=None):
            status["code"] = int(s.split()[0])
            return start_response(s, headers, exc_info) if exc_info else start_response(s, headers)

        req = Request(environ.get("REQUEST_METHOD", ""), unquote(environ.get("PATH_INFO", "")),
                      environ.get("QUERY_STRING", ""), environ.get("HTTP_RANGE"), 0, 0)
        with self.lock:  # logged before anything is sent: the client cannot see a response not yet logged
            self.log.append(req)
        body = self.app(environ, start)
        req.status = status.get("code", 0)
        try:
            for chunk in body:
                req.bytes_out += len(chunk)  # counted before it goes out
                req.status = status.get("code", 0)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close:
                close()


class MotoServer:
    """A ThreadedMotoServer on 127.0.0.1 (port chosen by the OS) with a request log."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self.endpoint = ""

    def start(self) -> "MotoServer":
        self._server.start()
        wsgi = self._server._server  # werkzeug's server: wrap its app to count what goes over the wire
        wsgi.app = _Counting(wsgi.app, self.log, self._lock)
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """Environment for code (in this process or a child) that should talk to this server via boto3."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                **FAKE_CREDENTIALS}

    def client(self, service: str, AWS_ACCESS_KEY_ID: str = "testing", AWS_SECRET_ACCESS_KEY: str = "testing",
               AWS_SESSION_TOKEN: str | None = None, **_):
        """A boto3 client of this server (credentials: fake ones, or those given as environment-style names)."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
                            aws_session_token=AWS_SESSION_TOKEN)

    def _post(self, path: str, data: dict | None = None) -> None:
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(data or {}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def reset(self) -> None:
        """Forget every resource (all services) and the request log."""
        self._post("/moto-api/reset")
        self.reset_log()

    def configure(self, config: dict) -> None:
        """moto's config, as ``mock_aws(config=...)``: e.g. {"stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False}}."""
        self._post("/moto-api/config", config)

    def set_auth(self, initial_no_auth_action_count: float) -> None:
        """moto's IAM enforcement, as ``INITIAL_NO_AUTH_ACTION_COUNT`` sets it for a server process: after this
        many more requests every request is authorized against its caller's IAM policies (``float("inf")``:
        never, moto's default)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset-auth",
                                     data=str(initial_no_auth_action_count).encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests(self, bucket: str | None = None, key: str | None = None, method: str | None = None
                 ) -> list[Request]:
        """Logged S3 requests for a bucket (and key), path-style (/bucket/key) or virtual-host style."""
        with self._lock:
            log = list(self.log)
        out = []
        for r in log:
            if method and r.method != method:
                continue
            if bucket is not None:
                if not (r.path == f"/{bucket}" or r.path.startswith(f"/{bucket}/")):
                    continue
                if key is not None and r.path != f"/{bucket}/{key}":
                    continue
            out.append(r)
        return out

    def bytes_read(self, bucket: str, key: str | None = None) -> int:
        """Body bytes sent for GET requests on bucket (/key): what a reader of the object really transferred."""
        return sum(r.bytes_out for r in self.requests(bucket, key, "GET"))


@pytest.fixture(scope="session")
def _moto_server_session():
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto_server(_moto_server_session, monkeypatch):
    """The session's moto server, emptied, with this process's boto3 pointed at it (AWS_ENDPOINT_URL)."""
    server = _moto_server_session
    server.reset()
    server.set_auth(float("inf"))
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    yield server
    server.reset_log()


__all__ = ["MotoServer", "Request", "moto_server", "_moto_server_session", "REGION", "FAKE_CREDENTIALS"]
