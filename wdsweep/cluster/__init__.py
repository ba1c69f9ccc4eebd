"""cluster: jobs as processes or Slurm jobs through submitit (hydra/launcher=submitit_local or
submitit_slurm), and the worker processes of the Optuna sweeper's worker mode.

Holds submitit_launch.py: how a job or a batch of vectorized members is submitted, waited for,
and what a lost or preempted job leaves.

May import: wdsweep.jobs, wdsweep.tracking, wdsweep.config, wdsweep.train, wdsweep.errors.
"""
