"""Shared adapter helpers for the Lambda handlers (S3 transfer, env validation, events)."""
