"""wdsweep: Hydra-driven sweeps of weight decay and Lp regularization in PyTorch."""
__version__ = "0.1.0"
