"""``skillmaker serve``: the inference server of a model bundle."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

from skillmaker.commands.common import add_repo_flag
from skillmaker.errors import ExitCode
from skillmaker.serving.limits import MIB


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    # TensorFlow's start-up chatter would fill every server log; a user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from skillmaker.serving.serve import serve

    serve(
        args.repo,
        args.model,
        args.host,
        args.port,
        max_body_bytes=None if args.max_body_mb is None else int(args.max_body_mb * MIB),
        max_pixels=args.max_pixels,
        max_batch=args.max_batch,
        top_k=args.top_k,
        max_concurrency=args.max_concurrency,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        say=lambda message: print(message, file=out, flush=True),
    )
    return ExitCode.OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of MiB (got {text!r})") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {value})")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP: POST /predict, GET /health, GET /version, "
        "the Open Inference Protocol under /v2, GET /metrics",
    )
    add_repo_flag(p)
    p.add_argument(
        "--model",
        type=Path,
        help="a model bundle folder (model.keras, labels.json, stamp.json); "
        "default: the current run of the skill repo",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument(
        "--max-body-mb", type=_megabytes, help="largest request body in MiB (default 32)"
    )
    p.add_argument(
        "--max-pixels",
        type=_positive,
        help="largest image in pixels (default: 256 pixels per pixel of the model's input, at "
        "least 4,000,000, at most the config's data.max_pixels or 40,000,000)",
    )
    p.add_argument("--max-batch", type=_positive, help="most images per request (default 64)")
    p.add_argument("--top-k", type=_positive, help="classes per image by default (default 5)")
    p.add_argument(
        "--max-concurrency",
        type=_positive,
        help="requests in flight before the server answers 503 with Retry-After (default 64)",
    )
    p.add_argument(
        "--header-timeout",
        type=_seconds,
        help="seconds a client has to send a request's headers (default 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=_seconds,
        help="seconds a client has to send a request's body (default 30)",
    )
    p.set_defaults(handler=_cmd_serve)
