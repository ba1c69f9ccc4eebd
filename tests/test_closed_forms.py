"""A linear model trained by the harness to convergence lands on scikit-learn's closed-form
or coordinate-descent solutions, which pins down the lambda convention end to end.

Our objective is mean((y - Xw - b)^2) + lam * penalty(w), bias unpenalized (scope=weights):
  * L2, penalty |w|^2/2:  x n  ->  |y - Xw - b|^2 + (n lam / 2)|w|^2      = Ridge(alpha = n lam / 2)
  * L1, penalty |w|_1:    / 2  ->  |y - Xw - b|^2 / (2n) + (lam / 2)|w|_1 = Lasso(alpha = lam / 2)
With momentum mu, decoupled and proximal decay act outside the momentum buffer, so their fixed
point is that of the loss plus (1 - mu) times the penalty; coupled decay's is the penalty itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Lasso, Ridge

from wdsweep.run import run

N_TRAIN, N_FEATURES = 80, 5


@pytest.fixture
def linear_csv(tmp_path):
    rng = np.random.default_rng(7)
    n = N_TRAIN + 40
    x = rng.normal(size=(n, N_FEATURES))
    y = x @ np.array([2.0, -1.0, 0.3, 0.0, 0.05]) + 0.7 + rng.normal(scale=0.5, size=n)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(N_FEATURES)]).assign(
        y=y, split=["train"] * N_TRAIN + ["val"] * 20 + ["test"] * 20)
    path = tmp_path / "linear.csv"
    frame.to_csv(path, index=False)
    train = frame[frame.split == "train"]
    return path, train[[f"f{i}" for i in range(N_FEATURES)]].to_numpy(), train.y.to_numpy()


def fit(compose_cfg, tmp_path, csv_path, *overrides) -> tuple:
    cfg = compose_cfg([
        "data=csv", f"data.path={csv_path}", "data.target=y", "data.standardize=false",
        "model=linear", "optimizer=sgd", "optimizer.lr=0.1", "trainer.steps=3000",
        "trainer.eval_every=3000", "reg.scope=weights", *overrides])
    job = tmp_path / "job"
    run(cfg, job)
    state = torch.load(job / "model.pt")
    return state["weight"].double().numpy().ravel(), float(state["bias"])


@pytest.mark.parametrize("mode,momentum,scale", [
    ("coupled", 0.9, 1.0), ("coupled", 0.0, 1.0), ("decoupled", 0.9, 0.1), ("proximal", 0.0, 1.0)])
def test_weight_only_l2_matches_ridge(compose_cfg, tmp_path, linear_csv, mode, momentum, scale):
    path, x, y = linear_csv
    lam = 0.5
    w, b = fit(compose_cfg, tmp_path, path, f"reg.lam={lam}", "reg.p=2", f"reg.mode={mode}",
               f"optimizer.momentum={momentum}")
    ridge = Ridge(alpha=N_TRAIN * lam * scale / 2).fit(x, y)
    np.testing.assert_allclose(w, ridge.coef_, atol=2e-5)
    assert b == pytest.approx(ridge.intercept_, abs=2e-5)
    # and it is not just any fit: plain least squares is far from it
    assert np.abs(Ridge(alpha=1e-9).fit(x, y).coef_ - w).max() > 1e-2


@pytest.mark.parametrize("momentum,scale", [(0.0, 1.0), (0.9, 0.1)])
def test_proximal_l1_matches_lasso(compose_cfg, tmp_path, linear_csv, momentum, scale):
    path, x, y = linear_csv
    lam = 0.2
    w, b = fit(compose_cfg, tmp_path, path, "reg=l1_prox", f"reg.lam={lam}",
               f"optimizer.momentum={momentum}")
    lasso = Lasso(alpha=lam * scale / 2, tol=1e-12, max_iter=100_000).fit(x, y)
    np.testing.assert_allclose(w, lasso.coef_, atol=2e-5)
    assert b == pytest.approx(lasso.intercept_, abs=2e-5)
    # the exact zeros are where Lasso's are
    np.testing.assert_array_equal(w == 0, lasso.coef_ == 0)
    if momentum == 0:
        assert (w == 0).any()
