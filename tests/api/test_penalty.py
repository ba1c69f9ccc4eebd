"""The public API, `from wdsweep import WeightPenalty`, in a plain PyTorch loop: built and
attached in two lines, it ends where the harness's own loop does, lands on scikit-learn's
closed forms, and refuses misuse in one line."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, Ridge
from torch import nn
from torch.nn import functional as F

from wdsweep import WeightPenalty
from wdsweep.jobs.run import run, seed_and_draw_data
from wdsweep.train.models import build_model, data_info_of
from wdsweep.train.optimizers import lr_factor

N_TRAIN, N_FEATURES, LAM = 80, 5, 0.2


@pytest.fixture(scope="module")
def linear_data():
    """tests/train/test_closed_forms.py's problem: five features, two of them (nearly) useless."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_TRAIN, N_FEATURES))
    y = x @ np.array([2.0, -1.0, 0.3, 0.0, 0.05]) + 0.7 + rng.normal(scale=0.5, size=N_TRAIN)
    return x, y


def fit_linear(x, y, make_optimizer, steps: int = 1000, **settings) -> tuple:
    """A plain loop: full-batch mean squared error, the penalty attached in one line."""
    torch.manual_seed(0)
    model = nn.Linear(N_FEATURES, 1)
    optimizer = make_optimizer(model.parameters())
    penalty = WeightPenalty(model, **settings).attach(optimizer)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)[:, None]
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(xt), yt).backward()
        optimizer.step()
    return model.weight.detach().double().numpy().ravel(), float(model.bias.detach()), penalty


def sgd(momentum: float = 0.9, nesterov: bool = False):
    return lambda params: torch.optim.SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov)


ADAM = lambda params: torch.optim.Adam(params, lr=0.03)  # noqa: E731


@pytest.mark.parametrize("mode", ["coupled", "proximal"])
def test_l2_lands_on_ridge(linear_data, mode):
    x, y = linear_data
    w, b, penalty = fit_linear(x, y, sgd(), lam=0.5, p=2, mode=mode)
    ridge = Ridge(alpha=N_TRAIN * 0.5 / 2).fit(x, y)
    np.testing.assert_allclose(w, ridge.coef_, atol=2e-6)
    assert b == pytest.approx(ridge.intercept_, abs=2e-6)
    assert penalty.penalty() == pytest.approx(0.5 * (w ** 2).sum() / 2, rel=1e-6)


@pytest.mark.parametrize("make_optimizer", [sgd(), sgd(0.9, nesterov=True), ADAM], ids=["momentum", "nesterov", "adam"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["lasso", "elastic"])
def test_proximal_lands_on_lasso_and_elastic_net(linear_data, make_optimizer, l1_ratio):
    """Exact zeros where scikit-learn's are, under momentum and Adam alike (the prox step is
    taken in the optimizer's own metric)."""
    x, y = linear_data
    p = 1 if l1_ratio == 1 else 2
    w, b, penalty = fit_linear(x, y, make_optimizer, lam=LAM, p=p, l1_ratio=0 if p == 1 else l1_ratio,
                               mode="proximal")
    reference = (Lasso(alpha=LAM / 2, tol=1e-12, max_iter=100_000) if p == 1 else
                 ElasticNet(alpha=LAM / 2, l1_ratio=l1_ratio, tol=1e-12, max_iter=100_000)).fit(x, y)
    assert (reference.coef_ == 0).any()
    np.testing.assert_array_equal(w == 0, reference.coef_ == 0)
    np.testing.assert_allclose(w, reference.coef_, atol=2e-6)
    assert b == pytest.approx(reference.intercept_, abs=2e-6)
    assert penalty.sparsity() == pytest.approx(float((w == 0).mean()))


# Every mode, scope, p (the p < 1 smoothing included) and optimizer, as the harness runs them:
# (harness overrides, WeightPenalty settings, the plain loop's optimizer).
CASES = {
    "coupled-p0.5-smoothed": (["reg.p=0.5", "reg.lam=1e-4"], dict(p=0.5, lam=1e-4), "sgd"),
    "coupled-p1.5-all": (["reg.p=1.5", "reg.scope=all"], dict(p=1.5, scope="all"), "sgd"),
    "decoupled-corrected": (["reg=decoupled", "reg.momentum_corrected=true"],
                            dict(mode="decoupled", momentum_corrected=True), "sgd"),
    "decoupled-adam": (["reg=decoupled", "reg.p=3", "optimizer=adam"], dict(mode="decoupled", p=3), "adam"),
    "elastic-adamw": (["reg=elastic", "reg.lam=1e-2", "optimizer=adamw"],
                      dict(mode="proximal", l1_ratio=0.5, lam=1e-2), "adamw"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_plain_loop_ends_where_the_harness_does(compose_cfg, tmp_path, case):
    """The same net, data, optimizer and cosine schedule as a harness run: the same weights to
    float rounding, and the same reg_loss, weight_norm and sparsity as its metrics.json."""
    overrides, settings, name = CASES[case]
    steps = 40
    cfg = compose_cfg([f"trainer.steps={steps}", f"trainer.eval_every={steps}", "optimizer.fused=false",
                       f"optimizer={name}", "optimizer.schedule=cosine", "optimizer.warmup_steps=5",
                       "model.width=32", "reg.lam=1e-2", *overrides])
    run(cfg, tmp_path / "job")
    reference = torch.load(tmp_path / "job" / "model.pt")
    recorded = json.loads((tmp_path / "job" / "metrics.json").read_text())

    splits = seed_and_draw_data(cfg)  # the run's data and initial weights
    model = build_model(cfg.model, data_info_of(splits))
    optimizer = {"sgd": lambda: torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr, momentum=0.9),
                 "adam": lambda: torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr),
                 "adamw": lambda: torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr, weight_decay=0)}[name]()
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor("cosine", steps, 5, 0.0))
    penalty = WeightPenalty(model, **{"lam": 1e-2, **settings}).attach(optimizer)
    x, y = splits.x["train"], splits.y["train"]
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
        schedule.step()

    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=1e-6, rtol=1e-5)
    for key, value in penalty.metrics().items():
        assert value == pytest.approx(recorded[key], rel=1e-5, abs=1e-9), key
    untouched = build_model(cfg.model, data_info_of(seed_and_draw_data(cfg)))
    assert any(float((a - b).abs().max()) > 1e-4 for a, b in zip(untouched.state_dict().values(), reference.values()))


def test_a_step_closure_gets_the_decay_after_its_backward():
    """optimizer.step(closure) computes the gradient inside step() (LBFGS here; Lightning does the
    same with every optimizer): coupled decay then equals the penalty added to the loss. In
    float64: LBFGS's curvature pairs magnify float32's rounding to 1e-5 in three steps."""
    def trained(attach: bool) -> list:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
        x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
        optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
        if attach:
            WeightPenalty(model, lam=0.1, p=3).attach(optimizer)

        def closure():
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            if not attach:  # the same penalty by hand: lam * sum |w|^3 / 3 over the weight matrices
                loss = loss + 0.1 * sum(q.abs().pow(3).sum() / 3 for q in model.parameters() if q.dim() >= 2)
            loss.backward()
            return loss

        for _ in range(3):
            optimizer.step(closure)
        return [q.detach().clone() for q in model.parameters()]

    for ours, by_hand in zip(trained(True), trained(False)):
        torch.testing.assert_close(ours, by_hand, atol=1e-12, rtol=0)


def test_each_parameter_group_decays_with_its_own_lr():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                                 {"params": model[1].parameters(), "lr": 0.01}], lr=1.0)
    WeightPenalty(model, lam=0.5, mode="decoupled").attach(optimizer)
    before = [model[0].weight.detach().clone(), model[1].weight.detach().clone()]
    for q in model.parameters():
        q.grad = torch.zeros_like(q)
    optimizer.step()
    torch.testing.assert_close(model[0].weight.detach(), before[0] * (1 - 0.1 * 0.5))
    torch.testing.assert_close(model[1].weight.detach(), before[1] * (1 - 0.01 * 0.5))


MAXIMIZING = {  # an optimizer that ascends, and torch's own decay our mode must equal under it
    "sgd-coupled": (lambda ps, wd: torch.optim.SGD(ps, lr=0.05, momentum=0.5, maximize=True, weight_decay=wd),
                    "coupled"),
    "adam-coupled": (lambda ps, wd: torch.optim.Adam(ps, lr=0.05, maximize=True, weight_decay=wd), "coupled"),
    "adamw-decoupled": (lambda ps, wd: torch.optim.AdamW(ps, lr=0.05, maximize=True, weight_decay=wd),
                        "decoupled"),
}


@pytest.mark.parametrize("case", list(MAXIMIZING))
def test_under_maximize_the_decay_lands_where_torchs_weight_decay_does(case):
    """maximize=True negates the gradient before torch adds its weight_decay: the coupled term
    must still shrink the weights (it grew them), and the decoupled one acts on them anyway."""
    make_optimizer, mode = MAXIMIZING[case]
    x, y = torch.randn(32, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(32, 1)

    def trained(ours: bool) -> torch.Tensor:
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
        optimizer = make_optimizer(model.parameters(), 0.0 if ours else 1.0)
        if ours:
            WeightPenalty(model, lam=1.0, p=2, scope="all", mode=mode).attach(optimizer)
        for _ in range(10):
            optimizer.zero_grad()
            (-F.mse_loss(model(x), y)).backward()
            optimizer.step()
        return torch.cat([q.detach().flatten() for q in model.parameters()])

    torch.testing.assert_close(trained(True), trained(False), atol=1e-6, rtol=0)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("settings,expected", [
    (dict(p=0), "p=0 is not allowed: a finite number > 0"),
    (dict(p=-1.0), "p=-1.0 is not allowed: a finite number > 0"),
    (dict(p=float("inf")), "p=inf is not allowed: a finite number > 0"),
    (dict(p=float("nan")), "p=nan is not allowed"),
    (dict(p=3, mode="proximal"), "p=3 is not allowed with mode='proximal': 1 or 2"),
    (dict(mode="prox"), "mode='prox' is not allowed: coupled or decoupled or proximal"),
    (dict(scope="bias"), "scope='bias' is not allowed"),
    (dict(lam=-1), "lam=-1 is not allowed: a finite number >= 0"),
    (dict(lam=float("inf")), "lam=inf is not allowed: a finite number >= 0"),
    (dict(eps=float("inf")), "eps=inf is not allowed: a finite number >= 0"),
    (dict(l1_ratio=2), "l1_ratio=2 is not allowed: a finite number in [0, 1]"),
    (dict(p=0.5, eps=0), "eps=0 is not allowed with p=0.5"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_settings_are_refused_in_one_line(settings, expected):
    with pytest.raises(ValueError) as err:
        WeightPenalty(nn.Linear(2, 1), **{"lam": 0.1, **settings})
    assert one_line(err) == f"WeightPenalty: {expected}" or one_line(err).startswith(f"WeightPenalty: {expected}")


def test_an_optimizer_it_cannot_follow_is_refused_in_one_line():
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
    with pytest.raises(ValueError) as err:
        WeightPenalty(model, lam=0.1).attach(torch.optim.SGD(nn.Linear(2, 4).parameters(), lr=0.1))
    assert one_line(err) == ("WeightPenalty.attach: the optimizer does not hold 2 of the model's 2 tensors in "
                             "scope (first: '0.weight'): build it from this model's parameters, or give "
                             "WeightPenalty the module it trains")
    with pytest.raises(ValueError) as err:  # only half of them
        WeightPenalty(model, lam=0.1).attach(torch.optim.SGD(model[1].parameters(), lr=0.1))
    assert "does not hold 1 of the model's 2 tensors in scope (first: '0.weight')" in one_line(err)
    for mode in ("proximal", "decoupled"):
        with pytest.raises(ValueError) as err:
            WeightPenalty(model, lam=0.1, p=1, mode=mode).attach(torch.optim.RMSprop(model.parameters()))
        assert one_line(err) == (f"WeightPenalty: no {mode} step is defined for RMSprop: SGD, Adam or AdamW "
                                 "(mode='coupled' works with any optimizer)")
    with pytest.raises(ValueError) as err:
        WeightPenalty(model, lam=0.1, p=1, mode="proximal").attach(torch.optim.Adam(model.parameters(), amsgrad=True))
    assert "amsgrad" in one_line(err)
    with pytest.raises(TypeError) as err:
        WeightPenalty(model, lam=0.1).attach(model)
    assert one_line(err) == "WeightPenalty.attach: Sequential is not allowed: a torch.optim.Optimizer"
    WeightPenalty(model, lam=0.1, p=1).attach(torch.optim.RMSprop(model.parameters()))  # coupled: any optimizer


def test_two_optimizers_share_the_model_and_each_decays_its_own():
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))
    first, second = (torch.optim.SGD(part.parameters(), lr=0.1) for part in model)
    WeightPenalty(model, lam=0.5, mode="decoupled").attach(first, second)
    before = [model[0].weight.detach().clone(), model[1].weight.detach().clone()]
    for q in model.parameters():
        q.grad = torch.zeros_like(q)
    second.step()  # only the second part is stepped, and decayed
    torch.testing.assert_close(model[0].weight.detach(), before[0])
    torch.testing.assert_close(model[1].weight.detach(), before[1] * (1 - 0.1 * 0.5))


def test_reg_loss_takes_each_tensors_momentum_whatever_the_attach_order():
    """Uncorrected decoupled decay under SGD reports lam / G * sum, G of the group stepping each
    tensor: the same value for two optimizers in either order and for one with two groups."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    fast, plain = model[0].parameters, model[1].parameters
    squares = [float(layer.weight.detach().pow(2).sum()) / 2 for layer in model]
    expected = 1e-2 * (squares[0] * (1 - 0.9) + squares[1])

    def reg_loss(*optimizers) -> float:
        return WeightPenalty(model, lam=1e-2, mode="decoupled").attach(*optimizers).metrics()["reg_loss"]

    first, second = torch.optim.SGD(fast(), lr=0.1, momentum=0.9), torch.optim.SGD(plain(), lr=0.1)
    for value in (reg_loss(first, second), reg_loss(second, first),
                  reg_loss(torch.optim.SGD([{"params": fast(), "momentum": 0.9}, {"params": plain()}], lr=0.1)),
                  reg_loss(torch.optim.SGD([{"params": plain()}, {"params": fast(), "momentum": 0.9}], lr=0.1))):
        assert value == pytest.approx(expected, rel=1e-6)


def test_each_group_steps_with_its_own_momentum_gain():
    """The corrected decoupled and the proximal steps read the gain of the group stepping each
    tensor (lr * lam * G), not one optimizer-wide gain."""
    for mode, shrink in (("decoupled", lambda t: 1 - t), ("proximal", lambda t: 1 / (1 + t))):
        model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        optimizer = torch.optim.SGD([{"params": model[0].parameters(), "momentum": 0.5},
                                     {"params": model[1].parameters()}], lr=0.1)
        WeightPenalty(model, lam=0.5, mode=mode, momentum_corrected=mode == "decoupled").attach(optimizer)
        before = [model[0].weight.detach().clone(), model[1].weight.detach().clone()]
        for q in model.parameters():
            q.grad = torch.zeros_like(q)
        optimizer.step()
        torch.testing.assert_close(model[0].weight.detach(), before[0] * shrink(0.1 * 0.5 * 2))
        torch.testing.assert_close(model[1].weight.detach(), before[1] * shrink(0.1 * 0.5))


def test_an_optimizers_own_weight_decay_is_warned_of():
    model = nn.Linear(2, 1)
    with pytest.warns(UserWarning, match=r"AdamW's own weight_decay=0.01 decays these tensors as well"):
        WeightPenalty(model, lam=0.1).attach(torch.optim.AdamW(model.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WeightPenalty(model, lam=0.1).attach(torch.optim.AdamW(model.parameters(), weight_decay=0))


def test_a_fused_step_under_a_grad_scaler_is_refused():
    """fused=True under a GradScaler unscales inside the optimizer's step: the gradient is still
    scaled when the decay would run, so it is refused rather than added wrong."""
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, fused=True)
    WeightPenalty(model, lam=0.1).attach(optimizer)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(model(torch.ones(2, 3)).sum()).backward()
    with pytest.raises(RuntimeError) as err:
        scaler.step(optimizer)
    assert one_line(err).startswith("SGD unscales its gradients inside its own step")


def test_metrics_and_detach():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
        model[1].weight.copy_(torch.tensor([[0.0, 2.0]]))
    penalty = WeightPenalty(model, lam=0.5, p=1)
    metrics = penalty.metrics()
    assert metrics["reg_loss"] == pytest.approx(0.5 * 8.0)
    assert metrics["weight_norm"] == pytest.approx(math.sqrt(1 + 4 + 9 + 4))
    assert metrics["sparsity"] == pytest.approx(2 / 6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    penalty.attach(optimizer)
    penalty.detach()  # no decay from here on
    before = model[0].weight.detach().clone()
    for q in model.parameters():
        q.grad = torch.zeros_like(q)
    optimizer.step()
    torch.testing.assert_close(model[0].weight.detach(), before)


def test_the_docstring_example_runs():
    import doctest

    import wdsweep.penalty

    result = doctest.testmod(wdsweep.penalty)
    assert result.attempted >= 8 and result.failed == 0
