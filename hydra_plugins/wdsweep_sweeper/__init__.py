"""wdsweep's grid sweeper: Hydra's basic sweeper that validates every job before any runs."""
