"""AWS clients other than S3's (``common.s3``), made once per container on first use: importing a handler
makes none, so tests can point boto3 at moto first (``client.cache_clear()`` forgets them)."""
from __future__ import annotations

import functools

import boto3


@functools.cache
def client(service: str):
    """The one boto3 client of ``service`` in this container."""
    return boto3.client(service)
