"""sweeps: the Ray layer (trainable, grid presets, entry scripts, QPU gateway). See docs/sweeps.md."""
