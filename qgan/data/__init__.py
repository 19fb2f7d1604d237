"""EBSD data layer: orientation maps, the five channels, patches, synthetic maps and datasets.

See docs/data.md. Public names (docs/interfaces.md):
OrientationMap, load_map, channels, extract_patches, synthesize_map, synth_patches, Dataset, save_dataset,
load_dataset, get_dataset.
"""
from .io import OrientationMap, load_map
from .channels import channels, extract_patches, segment_grains, scale_channels
from .synthetic import synthesize_map, synth_patches, PHASES
from .dataset import Dataset, save_dataset, load_dataset, get_dataset, default_cache_dir

__all__ = ["OrientationMap", "load_map", "channels", "extract_patches", "segment_grains", "scale_channels",
           "synthesize_map", "synth_patches", "PHASES", "Dataset", "save_dataset", "load_dataset",
           "get_dataset", "default_cache_dir"]
