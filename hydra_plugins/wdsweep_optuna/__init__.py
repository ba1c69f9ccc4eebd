"""wdsweep's Optuna sweeper for Hydra, on Optuna 5: config.py registers its config (every
hydra.sweeper.* key), optuna_sweeper.py is the Sweeper Hydra instantiates. The search itself
(the study, the ask/tell loop, twins, replicates, finalists, workers) is wdsweep.search."""
