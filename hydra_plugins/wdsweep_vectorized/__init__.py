"""hydra/launcher=vectorized: a sweep's jobs trained as batched models (see wdsweep.batched.vectorized)."""
