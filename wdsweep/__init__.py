"""wdsweep: Hydra-driven sweeps of weight decay and Lp regularization in PyTorch."""
from wdsweep.jobs.threads import request_reproducible_gemm

__version__ = "0.1.0"

# Before anything here can call MKL: its gemm then gives the same bits at any thread count
# (see wdsweep.jobs.threads).
request_reproducible_gemm()
