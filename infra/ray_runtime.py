"""Join Ray with bounded resources, and leave no Ray process behind.

The `cluster` profile runs Feast's Ray offline store and compute engine, and batch scoring on
Ray Data. Feast would start a local Ray on its own with every core and an object store sized
from the machine's memory; this module starts it first, with `CRM_RAY_NUM_CPUS` CPUs and
`CRM_RAY_OBJECT_STORE_MB` of object store (Feast then uses the running instance), or joins the
cluster at `CRM_RAY_ADDRESS` (a Ray head or a KubeRay service) in production.

Ray's workers are other processes: they read the lake with pyarrow, which takes the S3
endpoint and keys from the `AWS_*` environment, so the profile's S3 variables travel in the
job's runtime environment (to a local Ray and to a remote cluster alike).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.errors import CRMError
from infra.settings import Settings

# The worker environment: what pyarrow's S3 filesystem and boto3 read (see Settings.env_exports).
WORKER_ENV_PREFIXES = ("AWS_",)


class RayStartError(CRMError):
    """Ray could not be started or reached; the message says which and what to check."""


def worker_env(settings: Settings) -> dict[str, str]:
    """Environment every Ray worker needs to read this profile's lake (empty off S3)."""
    if not settings.uses_s3:
        return {}
    return {
        name: value
        for name, value in settings.env_exports().items()
        if name.startswith(WORKER_ENV_PREFIXES) and value
    }


def init_kwargs(settings: Settings) -> dict[str, Any]:
    """`ray.init` arguments: a bounded local instance, or the cluster at `ray_address`."""
    kwargs: dict[str, Any] = {
        "runtime_env": {"env_vars": worker_env(settings)},
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if settings.ray_address:
        return kwargs | {"address": settings.ray_address}
    return kwargs | {
        "address": "local",  # never join another instance's Ray that happens to be running
        "num_cpus": settings.ray_num_cpus,
        "object_store_memory": settings.ray_object_store_mb * 1024 * 1024,
        "include_dashboard": False,
    }


def connect(settings: Settings) -> bool:
    """Start (or join) Ray for this process unless it already is; True if this call did."""
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(**init_kwargs(settings))
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.ray_address or "a local instance"
        raise RayStartError(
            f"Ray could not start or connect ({where}): {exc}. Check CRM_RAY_ADDRESS, or unset it "
            "to start a local Ray with CRM_RAY_NUM_CPUS and CRM_RAY_OBJECT_STORE_MB."
        ) from exc
    if not settings.ray_address:
        _shutdown_on_sigterm()
    return True


def _shutdown_on_sigterm() -> None:
    """A SIGTERM (a supervisor stopping the run) stops the local Ray before the process ends.

    Ray's own exit hook runs only on a normal exit: killed by SIGTERM, the process left a Ray
    worker that was starting at that moment running (seen here). The handler shuts Ray down,
    then lets the previous handler (or the default, which ends the process) take the signal.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: object) -> None:
        shutdown()
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(signum, frame)  # type: ignore[arg-type]
        else:
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop)


def shutdown() -> None:
    """Disconnect; a local instance this process started stops with all its workers."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def ray_session(settings: Settings) -> Iterator[None]:
    """Ray for the duration of the block; shut down after it if the block's start was ours."""
    started = connect(settings)
    try:
        yield
    finally:
        if started:
            shutdown()
