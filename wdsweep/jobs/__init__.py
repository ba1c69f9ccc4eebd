"""jobs: one Hydra job from its config to its files, once, whatever happens around it.

Holds the job (run.py: seed, data, model, regularizer, train, write the record), what makes a
sweep resumable (resume.py: is a job done, the job folder's lock; canonical.py: jobs that only
differ in settings their config leaves idle run once and share the record), the thread rule
(threads.py), the lifeline that ends a joblib worker with its sweep (lifeline.py), the
in-process launcher's loop (inprocess.py), how overrides are printed (override_text.py), and a
job's checkpoint on disk and the signals that write one (checkpoints.py).

May import: wdsweep.tracking, wdsweep.config, wdsweep.train, wdsweep.errors.

Where to add
- something every job does or records: run.py (the record is written last, by _finish).
- a reason to run a done job again: resume.done_record.
"""
