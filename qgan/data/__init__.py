"""EBSD data layer: orientation maps, the five channels, patches, synthetic maps and datasets.

See docs/data.md. Public names (docs/interfaces.md):
OrientationMap, load_map, channels, extract_patches, synthesize_map, synth_patches, Dataset, save_dataset,
load_dataset, get_dataset.

The names are imported on first use (PEP 562), so ``qgan --help`` and ``qgan data ...`` pay for scipy only
when a command needs it.
"""
from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "OrientationMap": "io", "load_map": "io",
    "channels": "channels", "extract_patches": "channels", "segment_grains": "channels",
    "scale_channels": "channels",
    "synthesize_map": "synthetic", "synth_patches": "synthetic", "PHASES": "synthetic",
    "Dataset": "dataset", "save_dataset": "dataset", "load_dataset": "dataset", "get_dataset": "dataset",
    "default_cache_dir": "dataset",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Loading the submodule ``qgan.data.channels`` would set the package attribute ``channels`` to the module;
    the exported function of that name keeps it (as with eager ``from .channels import channels``)."""

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
