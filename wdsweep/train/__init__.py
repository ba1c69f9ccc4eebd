"""train: one model trained under one regularizer, as plain PyTorch.

Holds the data (data.py: the built-in sets, csv/npz/image folders, your loader; datasets.py:
their builders; splits.py; labels.py: targets as training takes them; images.py: image
decoding and augmentation), the models (models.py;
memory.py: a model's memory before it is built), the regularizers (regularizers.py: every
`reg.mode`, and which ones torch's optimizers already do, native_decay.py), the optimizers and
schedules (optimizers.py), the training loop itself (training.py), where it runs (device.py:
trainer.device), in what arithmetic (precision.py: trainer.precision) and the state a run
continues from (checkpoint.py: what a checkpoint holds).

May import: wdsweep.errors only. This is the bottom wing: it knows nothing of Hydra's sweeps,
Optuna or the files a job writes, and `wdsweep.config` may ask it about a model or a dataset.

Where to add
- a regularizer (a new reg.mode): its step or penalty in regularizers.py, its keys in
  wdsweep/config/schema.py (RegConfig) and their checks in wdsweep/config/validation.py, a preset
  in conf/reg/; the vectorized trainer (wdsweep.batched) says which modes it batches.
- an optimizer: optimizers.py, OPTIMIZERS in wdsweep/config/schema.py, conf/optimizer/.
- a built-in model or dataset: models.py or datasets.py, and a conf/model/ or conf/data/ file.
"""
