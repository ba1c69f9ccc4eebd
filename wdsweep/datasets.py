"""The public path of the dataset builders (`_target_: wdsweep.datasets.npz`, ...).

Configs, sweep folders and their config hashes name this path, so it stays: importing it gives
the module wdsweep.train.datasets itself (one module under two names, not a copy), where the code lives.
"""
import sys

from wdsweep.train import datasets as _datasets

sys.modules[__name__] = _datasets
