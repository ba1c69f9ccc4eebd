"""config: what a job's config may hold, checked before anything trains.

Holds the structured-config schemas Hydra composes with conf/ (schema.py: every key, its type,
default and meaning; the reference in the docs is generated from it), the checks that turn a bad
config into one line naming the key, the value and what is allowed (validation.py), passwords in
URLs (urls.py) and the example search-space hooks (search_spaces.py).

May import: wdsweep.train (to ask about a model or a dataset without training it) and
wdsweep.errors. Nothing here imports torch at import time: the sweepers validate every job
before the first one trains.

Where to add
- a config key: a field with its comment in the schema dataclass of its group (schema.py), and a
  check in validation.py if some values are not allowed.
- a config group option (model=, data=, ...): its schema in schema.py's _GROUP_SCHEMAS and its
  yaml file in conf/<group>/.
"""
