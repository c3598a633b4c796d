"""``redactor cloud``: use the deployed AWS pipeline from the command line (docs/client.md).

    redactor cloud submit FILE... [--key PREFIX] [--wait]   upload, print key, version, run and console URL
    redactor cloud status [KEY... | --all]                  queued / planning / redacting n of m / stitching /
                                                            done / failed (with the error and cause)
    redactor cloud wait KEY...                              follow the runs to the end (exit 0, or 4 if one failed)
    redactor cloud fetch KEY... [-o DIR]                    redacted video + JSON + HTML report of that version
    redactor cloud retry KEY                                run a failed upload again, without uploading it
    redactor cloud play STREAM [--expires S] [--port N]     serve a live stream's playlist locally, its segments
                                                            as presigned URLs (docs/live.md)
    redactor cloud policy [--live]                          the IAM policy these commands need (JSON; --live:
                                                            and 'play')

The stack comes from --stack, REDACTOR_STACK or the only redactor stack in the region (CloudFormation outputs);
credentials, region and profile the boto3 way (--region/--profile override). Exit codes as ``redactor``: 2 bad
input (unknown suffix, a key never uploaded), 3 setup (credentials, region, no or several stacks), 4 the run
failed, 130 interrupted. Nothing here is imported unless a ``cloud`` command runs (boto3 is optional).
"""
from __future__ import annotations

import argparse


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--stack", help="the redactor stack's name (default: $REDACTOR_STACK, else the only redactor "
                                   "stack in the region)")
    p.add_argument("--region", help="AWS region (default: the boto3 way: $AWS_REGION, the profile's region)")
    p.add_argument("--profile", help="AWS profile (default: $AWS_PROFILE or the default profile)")
    return p


def _waiting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=5.0, help="seconds between status checks (default 5)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _run(name: str):
    def run(a) -> int:
        from . import commands
        return getattr(commands, f"cmd_{name}")(a)
    return run


def add_parser(sub) -> None:
    """Add ``cloud`` and its commands to the ``redactor`` parser's subcommands."""
    common = _common()
    cloud = sub.add_parser("cloud", help="use the deployed AWS pipeline: submit, status, wait, fetch, retry, play",
                           description="Use the deployed AWS pipeline (docs/client.md).")
    cs = cloud.add_subparsers(dest="cloud_cmd", required=True)
    s = cs.add_parser("submit", parents=[common], help="upload videos to the raw bucket (each starts a run)")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--key", metavar="PREFIX", help="folder for the keys: PREFIX/<file name> (default: none)")
    s.add_argument("--wait", action="store_true", help="then follow the runs to the end, as 'wait' does")
    _waiting(s)
    st = cs.add_parser("status", parents=[common], help="where each upload's run is")
    st.add_argument("keys", nargs="*", metavar="KEY")
    st.add_argument("--all", action="store_true", help="every video in the raw bucket")
    w = cs.add_parser("wait", parents=[common], help="follow runs to the end, with progress")
    w.add_argument("keys", nargs="+", metavar="KEY")
    _waiting(w)
    f = cs.add_parser("fetch", parents=[common], help="download the redacted video and its reports")
    f.add_argument("keys", nargs="+", metavar="KEY")
    f.add_argument("-o", "--output", metavar="DIR", help="where to put redacted/<key>... (default: here)")
    r = cs.add_parser("retry", parents=[common], help="run a failed upload again (same object version)")
    r.add_argument("key", metavar="KEY")
    r.add_argument("--wait", action="store_true", help="then follow the run to the end")
    _waiting(r)
    for p, name in ((s, "submit"), (st, "status"), (w, "wait"), (f, "fetch"), (r, "retry")):
        if name != "submit":
            p.add_argument("--version", help="the upload's S3 version id (default: the key's latest)")
        p.set_defaults(func=_run(name))
    from ..hls_presign import add_arguments as add_play_arguments
    pl = cs.add_parser("play", parents=[common], help="play a live stream: a local playlist server, segments as "
                       "short-lived presigned URLs (Ctrl-C stops)")
    add_play_arguments(pl, bucket=False)
    pl.set_defaults(func=_run("play"))
    po = cs.add_parser("policy", parents=[common], help="print the IAM policy these commands need for the stack")
    po.add_argument("--live", action="store_true", help="with what 'play' needs (the live streams' objects)")
    po.set_defaults(func=_run("policy"))
