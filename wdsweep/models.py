"""The public path of the model builders (`_target_: wdsweep.models.mlp`, `wdsweep.models.ResNet`, ...).

Configs, sweep folders and their config hashes name this path, so it stays: importing it gives
the module wdsweep.train.models itself (one module under two names, not a copy), where the code lives.
"""
import sys

from wdsweep.train import models as _models

sys.modules[__name__] = _models
