"""tracking: what a job records and reports while and after it trains.

Holds the job's files (results.py: metrics.json, history.csv, model.pt, written atomically, and
the config hash that decides whether a job is done), the per-step training callbacks
(monitors.py: the progress bar, TensorBoard's scalars and histograms, the pruning reporter and
the watch that stops a job whose trial is over), the job's side of its Optuna trial
(trial_link.py: the storage, the pruner, heartbeats; journal.py: a journal file that survives a
torn tail) and the MLflow export (mlflow_export.py; mlflow_client.py the runs it writes;
mlflow_sqlite.py a local store whose creation was cut short).

May import: wdsweep.config, wdsweep.train, wdsweep.errors.

Where to add
- a logger: a `logger=` option (its schema in wdsweep/config/schema.py, a file in conf/logger/),
  then either a per-step Callback in monitors.py (added to the job's callbacks in
  wdsweep/jobs/run.py) or an export from the job's files after it ends, as mlflow_export.py does.
- a metrics.json field: results.py and the record built in wdsweep/jobs/run.py; the docs'
  metrics.json reference.
"""
