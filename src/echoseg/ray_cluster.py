"""Joining or starting Ray, shared by the study (`ablate --executor ray`) and archive-scale
prediction (`predict --executor ray`)."""

from __future__ import annotations

import logging
from types import ModuleType

from echoseg.errors import ConfigError

RAY_HINT = "install it with: pip install 'echoseg[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module; ConfigError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed; {RAY_HINT}") \
            from None
    return ray


def start_ray(ray: ModuleType, address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to ``address``, or start a local instance with ``num_cpus`` CPUs (None: all),
    unless Ray is already initialised. Returns True when this call started it (the caller
    shuts it down). Ray's start-up notices stay out of the command's output."""
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)
    options = {"address": address} if address else {"num_cpus": num_cpus}
    ray.init(**options, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    return True
