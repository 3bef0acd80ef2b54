"""Test helpers: a real moto server, real images, tiny file trees."""

from __future__ import annotations

import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def free_port() -> int:
    """Give a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running moto server and how to reach it."""

    server: Any
    endpoint: str

    def env(self) -> dict[str, str]:
        """Give the AWS environment variables that point boto3 at this server."""
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def reset(self) -> None:
        """Forget every bucket, stack and message (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()


def start_moto() -> MotoServer:
    """Give a moto server started on a free port of 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return MotoServer(server=server, endpoint=f"http://127.0.0.1:{port}")


def write_digits(root: Path, per_group: int = 1) -> int:
    """Write scikit-learn's bundled digits as 8-bit PNGs under ``root/<digit>/<group>/<n>.png``.

    Each image is its own group unless ``per_group`` > 1. Gives the number of files written.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)
    for index, (pixels, label) in enumerate(zip(images, digits.target, strict=True)):
        group = f"g{index // per_group:05d}"
        folder = root / str(int(label)) / group
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(folder / f"{index:05d}.png")
    return len(images)


def build_file_tree(root: Path, spec: dict[str, str | bytes]) -> None:
    """Write files given as ``{relative path: content}`` under ``root``."""
    for name, content in spec.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
