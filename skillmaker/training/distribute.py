"""The training framework's runtime: devices, determinism and distribution.

The one module that talks to TensorFlow directly (``tf.config``, ``tf.distribute``); everything else
in training uses the backend-neutral Keras 3 API. Under another Keras backend the mirrored strategy
is refused, op determinism is left to that backend, and GPUs are found through the backend's own
library (``jax.devices``, ``torch.cuda``), imported by name only when that backend runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from skillmaker import __version__
from skillmaker.errors import UserError


@dataclass(frozen=True)
class Runtime:
    """What the machine offers training: the Keras backend, its GPUs and the devices to mirror over.

    ``devices`` is what a mirrored strategy spreads over: empty means every GPU found. A test passes
    logical CPU devices here to run the mirrored code path on a machine without GPUs.
    """

    backend: str
    gpus: tuple[str, ...]
    devices: tuple[str, ...] = ()

    @property
    def replica_devices(self) -> int:
        """Give how many devices a mirrored strategy would use."""
        return len(self.devices) or len(self.gpus)


def _backend_gpus(backend: str) -> tuple[str, ...]:
    """Give the model names of the GPUs a Keras backend other than TensorFlow can use."""
    if backend == "jax":
        jax: Any = importlib.import_module("jax")
        try:
            devices = jax.devices("gpu")
        except RuntimeError:  # no GPU platform in this jaxlib, or none found
            return ()
        return tuple(str(device.device_kind) for device in devices)
    if backend == "torch":
        cuda: Any = importlib.import_module("torch").cuda
        if not cuda.is_available():
            return ()
        return tuple(str(cuda.get_device_name(index)) for index in range(cuda.device_count()))
    with contextlib.suppress(Exception):  # not every backend can list devices
        return tuple(str(d) for d in keras.distribution.list_devices("gpu"))
    return ()


def detect_runtime() -> Runtime:
    """Give the runtime of this machine: the Keras backend and the names of its GPUs."""
    backend = keras.backend.backend()
    gpus: tuple[str, ...] = ()
    if backend == "tensorflow":
        import tensorflow as tf

        names = []
        for device in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(device)
            names.append(str(details.get("device_name", device.name)))
        gpus = tuple(names)
    else:
        gpus = _backend_gpus(backend)
    return Runtime(backend=backend, gpus=gpus)


def configure_determinism(seed: int, *, single_thread: bool = False) -> list[str]:
    """Give warnings after seeding every generator and turning on deterministic ops.

    With op determinism, two runs on one machine give identical weights. ``single_thread`` also
    pins TensorFlow to one intra-op and one inter-op thread, which makes results identical across
    machines with different core counts; it must happen before TensorFlow starts its thread pools,
    so a process that has already run TensorFlow gets a warning instead.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() != "tensorflow":
        return []
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    warnings: list[str] = []
    if single_thread:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            intra = tf.config.threading.get_intra_op_parallelism_threads()
            inter = tf.config.threading.get_inter_op_parallelism_threads()
            if (intra, inter) != (1, 1):
                warnings.append(
                    "TensorFlow had already started with its default thread pools; "
                    "one-thread determinism applies from the next process on"
                )
    return warnings


@contextlib.contextmanager
def distribution_scope(strategy: str, runtime: Runtime) -> Iterator[int]:
    """Give the number of replicas inside the scope in which a model must be built and compiled."""
    if strategy == "none":
        yield 1
        return
    if strategy != "mirrored":
        raise UserError(f"strategy: must be none or mirrored (got {strategy!r})")
    if runtime.backend != "tensorflow":
        raise UserError(
            f"strategy mirrored: needs the TensorFlow backend of Keras (running {runtime.backend})"
        )
    import tensorflow as tf

    chosen = tf.distribute.MirroredStrategy(devices=list(runtime.devices) or None)
    with chosen.scope():
        yield int(chosen.num_replicas_in_sync)


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def hardware_info(runtime: Runtime, *, replicas: int) -> dict[str, Any]:
    """Give the hardware a run trained on, as ``train.json`` records it."""
    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count() or 1,
        "gpus": list(runtime.gpus),
        "replicas": replicas,
        "platform": platform.platform(),
        "backend": runtime.backend,
    }


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str]:
    """Give the versions of Python and the libraries training depends on."""
    found = {
        "python": platform.python_version(),
        "skillmaker": __version__,
        "keras": keras.__version__,
        "numpy": _version("numpy"),
        "tensorflow": _version("tensorflow", "tensorflow-cpu", "tensorflow-gpu")
        if "tensorflow" in sys.modules or keras.backend.backend() == "tensorflow"
        else None,
        "jax": _version("jax") if keras.backend.backend() == "jax" else None,
        "torch": _version("torch") if keras.backend.backend() == "torch" else None,
    }
    return {name: value for name, value in found.items() if value is not None}
