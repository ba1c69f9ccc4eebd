"""search: Optuna searches and the finalists of any sweep, everything that is not Hydra glue.

The Optuna search (hydra/sweeper=wdsweep_optuna; the plugin in hydra_plugins/wdsweep_optuna only
hands Hydra's context and launcher to it) is OptunaSearch in loop.py, one class per concern:
- settings.py: hydra.sweeper.* and their checks before any work;
- study.py: the study and its storage, its derived name, the ask lock, the password;
- space.py: Hydra's sweep syntax as Optuna distributions;
- telling.py: trials to jobs (overrides, the trial link, the launch) and back (tell);
- orphans.py: the sweep's heartbeat, and trials whose sweep stopped;
- twins.py: a trial that repeats a finished one is told its result, not trained;
- replicates.py, replicated_trials.py: a trial trains several seeds and is told their aggregate;
- finalists.py, finalist_runs.py: the best trials re-run on fresh seeds (finalists.py is shared
  with the grid sweeper);
- workers.py: worker mode, N processes pulling trials; results_file.py: optimization_results.yaml
  and the failure stops; dry_run.py: the plan, printed; trials.py and trial_outcome.py: the
  trial attributes and how a job's ending becomes a trial state.

May import: wdsweep.cluster, wdsweep.batched, wdsweep.jobs, wdsweep.tracking, wdsweep.config,
wdsweep.train, wdsweep.errors.

Where to add
- a sampler or a sampler option: its dataclass in hydra_plugins/wdsweep_optuna/config.py (the
  keys Hydra accepts) and its construction in study.py (StudyStorage._sampler).
- a pruner: config.py there, and wdsweep.tracking.trial_link.build_pruner (the job builds it).
- a sweeper setting: config.py there, SearchSettings.__init__ and its check in settings.py.
"""
