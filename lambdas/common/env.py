"""Environment validation, done once at cold start so a misconfigured function fails on its first call
with a clear message instead of half-way through a video."""
from __future__ import annotations

import os


class MissingEnvironment(RuntimeError):
    """A variable the function needs is not set (the stack sets them all)."""


def require(*names: str) -> dict[str, str]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise MissingEnvironment(f"missing environment variable(s): {', '.join(missing)} (set by the CDK stack)")
    return {n: os.environ[n] for n in names}


def engine_config():
    """The engine's Config from REDACTOR_* variables (validated; raises redactor.ConfigError)."""
    from redactor import Config

    return Config.from_env()
