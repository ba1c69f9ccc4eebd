"""wdsweep: Hydra-driven sweeps of weight decay and Lp regularization in PyTorch."""
from wdsweep.jobs.threads import request_reproducible_gemm

__version__ = "0.1.0"
__all__ = ["WeightPenalty"]


def __getattr__(name: str):
    """`from wdsweep import WeightPenalty` (wdsweep.penalty), imported when first asked for: the
    command line and config validation import wdsweep without needing torch yet."""
    if name == "WeightPenalty":
        from wdsweep.penalty import WeightPenalty

        return WeightPenalty
    raise AttributeError(f"module 'wdsweep' has no attribute {name!r}")


# Before anything here can call MKL: its gemm then gives the same bits at any thread count
# (see wdsweep.jobs.threads).
request_reproducible_gemm()
