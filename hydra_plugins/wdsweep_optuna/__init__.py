"""wdsweep's Optuna sweeper for Hydra, on Optuna 5: pruning across processes, resume,
failure tolerance and cooperating sweep processes. config.py registers it; _impl.py works."""
