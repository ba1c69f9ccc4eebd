"""batched: many jobs of one sweep trained as one batched model (hydra/launcher=vectorized).

Holds the vectorized trainer (vectorized.py: members stacked along a leading axis, each with its
own seed, data order, lr and regularizer, each member's files written as its job alone would)
and func_net.py (any nn.Module run functionally over stacked parameters).

May import: wdsweep.jobs, wdsweep.tracking, wdsweep.config, wdsweep.train, wdsweep.errors.

Where to add
- a regularizer or optimizer the batched trainer should take: its batched step in vectorized.py
  (what it cannot batch falls back to one job at a time, and says so).
"""
