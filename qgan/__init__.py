"""qgan: the science of qgan-sweeps (QCBM-enhanced WGAN-GP for EBSD images). Never imports ray."""

__version__ = "0.1.0"
