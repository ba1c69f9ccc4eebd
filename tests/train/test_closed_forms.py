"""A linear model trained by the harness to convergence lands on scikit-learn's closed-form
or coordinate-descent solutions, which pins down the lambda convention end to end.

Our objective is mean((y - Xw - b)^2) + lam * penalty(w), bias unpenalized (scope=weights):
  * L2, penalty |w|^2/2:  x n  ->  |y - Xw - b|^2 + (n lam / 2)|w|^2      = Ridge(alpha = n lam / 2)
  * L1, penalty |w|_1:    / 2  ->  |y - Xw - b|^2 / (2n) + (lam / 2)|w|_1 = Lasso(alpha = lam / 2)
  * elastic, penalty a|w|_1 + (1 - a)|w|^2/2, / 2  ->  ElasticNet(alpha = lam / 2, l1_ratio = a)
Coupled and proximal decay land there under every optimizer: SGD with momentum 0, 0.5 and 0.9,
Nesterov, Adam and AdamW (the prox step is taken in the optimizer's own metric,
wdsweep.train.regularizers). Decoupled decay under SGD momentum mu lands on loss + (1 - mu) times
the penalty, and on the penalty itself with reg.momentum_corrected=true. Each run's reg_loss
(metrics.json) is checked against the penalty of its final weights, computed here, with the
lam the docs claim for that mode.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, Ridge

from wdsweep.jobs.run import run

N_TRAIN, N_FEATURES = 80, 5
LAM = 0.2  # for L1 and elastic: Lasso(alpha=0.1) zeroes two of the five coefficients

# Optimizers each prox run is checked under. Adam's lr is larger than its default: at 1e-3 it
# needs many more steps to get there. Measured at 1000 steps: every case within 3.1e-7 of
# scikit-learn's coefficients (float32 weights), so 2e-6 leaves room for other CPUs' rounding.
SGD = ["optimizer=sgd", "optimizer.lr=0.1"]
OPTIMIZERS = {
    "sgd": [*SGD, "optimizer.momentum=0"],
    "momentum0.5": [*SGD, "optimizer.momentum=0.5"],
    "momentum0.9": [*SGD, "optimizer.momentum=0.9"],
    "nesterov0.9": [*SGD, "optimizer.momentum=0.9", "optimizer.nesterov=true"],
    "adam": ["optimizer=adam", "optimizer.lr=0.03"],
    "adamw": ["optimizer=adamw", "optimizer.lr=0.03"],
}


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
    """Train in this process (the command line adds nothing here); return the final weights,
    bias and the job's reg_loss as metrics.json records it."""
    cfg = compose_cfg([
        "data=csv", f"data.path={csv_path}", "data.target=y", "data.standardize=false",
        "model=linear", *SGD, "trainer.steps=1000", "trainer.eval_every=1000",
        "reg.scope=weights", *overrides])
    job = tmp_path / "job"
    run(cfg, job)
    state = torch.load(job / "model.pt")
    reg_loss = json.loads((job / "metrics.json").read_text())["reg_loss"]
    return state["weight"].double().numpy().ravel(), float(state["bias"]), reg_loss


def elastic_penalty(w: np.ndarray, lam: float, l1_ratio: float) -> float:
    """lam * (a |w|_1 + (1 - a) |w|^2 / 2): the docs' convention, in float64."""
    return lam * (l1_ratio * np.abs(w).sum() + (1 - l1_ratio) * (w ** 2).sum() / 2)


@pytest.mark.parametrize("mode,sgd,corrected,scale", [
    ("coupled", ["optimizer.momentum=0.9"], False, 1.0),
    ("coupled", ["optimizer.momentum=0"], False, 1.0),
    ("decoupled", ["optimizer.momentum=0.9"], False, 0.1),  # loss + (1 - mu) penalty
    ("decoupled", ["optimizer.momentum=0.9"], True, 1.0),
    ("decoupled", ["optimizer.momentum=0.5"], True, 1.0),
    ("decoupled", ["optimizer.momentum=0.9", "optimizer.nesterov=true"], True, 1.0),
    ("proximal", ["optimizer.momentum=0"], False, 1.0),
    ("proximal", ["optimizer.momentum=0.9"], False, 1.0)],
    ids=["coupled-momentum", "coupled", "decoupled-momentum", "decoupled-corrected-0.9",
         "decoupled-corrected-0.5", "decoupled-corrected-nesterov", "proximal", "proximal-momentum"])
def test_weight_only_l2_matches_ridge(compose_cfg, tmp_path, linear_csv, mode, sgd, corrected, scale):
    path, x, y = linear_csv
    lam = 0.5
    w, b, reg_loss = fit(compose_cfg, tmp_path, path, f"reg.lam={lam}", "reg.p=2", f"reg.mode={mode}",
                         f"reg.momentum_corrected={str(corrected).lower()}", *sgd)
    ridge = Ridge(alpha=N_TRAIN * lam * scale / 2).fit(x, y)
    np.testing.assert_allclose(w, ridge.coef_, atol=2e-6)
    assert b == pytest.approx(ridge.intercept_, abs=2e-6)
    # and it is not just any fit: plain least squares is far from it
    assert np.abs(Ridge(alpha=1e-9).fit(x, y).coef_ - w).max() > 1e-2
    # reg_loss is the penalty of the objective the run converged to
    assert reg_loss == pytest.approx(elastic_penalty(w, scale * lam, 0.0), rel=1e-6)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
# l1_prox is p=1: its whole penalty is L1, an l1_ratio of 1 (Lasso is ElasticNet at l1_ratio=1).
@pytest.mark.parametrize("preset,l1_ratio", [("l1_prox", 1.0), ("elastic", 0.5)], ids=["lasso", "elastic"])
def test_proximal_matches_lasso_and_elastic_net(compose_cfg, tmp_path, linear_csv, optimizer, preset,
                                                l1_ratio):
    """The same optimum under every optimizer: the prox step follows momentum's gain and
    Adam's per-entry scale, so its fixed point is that of loss + penalty."""
    path, x, y = linear_csv
    w, b, reg_loss = fit(compose_cfg, tmp_path, path, f"reg={preset}", f"reg.lam={LAM}",
                         *OPTIMIZERS[optimizer])
    reference = (Lasso(alpha=LAM / 2, tol=1e-12, max_iter=100_000) if preset == "l1_prox" else
                 ElasticNet(alpha=LAM / 2, l1_ratio=l1_ratio, tol=1e-12, max_iter=100_000)).fit(x, y)
    assert (reference.coef_ == 0).any()  # so that the zero pattern below says something
    np.testing.assert_array_equal(w == 0, reference.coef_ == 0)  # exact zeros where sklearn's are
    np.testing.assert_allclose(w, reference.coef_, atol=2e-6)
    assert b == pytest.approx(reference.intercept_, abs=2e-6)
    assert reg_loss == pytest.approx(elastic_penalty(w, LAM, l1_ratio), rel=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_decoupled_decay_under_adam_reports_the_nominal_penalty(compose_cfg, tmp_path, linear_csv,
                                                                optimizer):
    """Decoupled decay under Adam/AdamW converges to no fixed penalty (its fixed point is
    g + lam D w = 0, D Adam's per-entry scale): reg_loss is the nominal lam * |w|^2 / 2, and the
    weights are not Ridge's at that lam."""
    path, x, y = linear_csv
    lam = 0.5
    w, _, reg_loss = fit(compose_cfg, tmp_path, path, f"reg.lam={lam}", "reg.p=2", "reg.mode=decoupled",
                         *OPTIMIZERS[optimizer])
    assert reg_loss == pytest.approx(elastic_penalty(w, lam, 0.0), rel=1e-6)
    assert np.abs(Ridge(alpha=N_TRAIN * lam / 2).fit(x, y).coef_ - w).max() > 1e-2
