"""The regularizer's math: every way of applying a decay gives the same trajectory, and each
mode does what its formula says."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from wdsweep.train.data import Splits
from wdsweep.train.models import mlp
from wdsweep.train.optimizers import build_optimizer, lr_factor
from wdsweep.train.regularizers import Regularizer, lp_grad, lp_term
from wdsweep.train.training import train

LAM = 0.05
STEPS = 60


def small_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(32, 1, generator=gen)
    splits = Splits(task="regression", x={s: x for s in ("train", "val", "test")},
                    y={s: y for s in ("train", "val", "test")}, n_features=3, n_outputs=1)
    torch.manual_seed(seed)
    return splits, mlp(3, 1, depth=2, width=16, activation="tanh")


SCHEDULE = {"schedule": "cosine", "warmup_steps": 5, "min_lr": 0.0, "fused": True}


def optimizer_cfg(name: str, lr: float):
    base = {"name": name, "lr": lr, **SCHEDULE}
    extra = {"momentum": 0.9, "nesterov": False} if name == "sgd" else {"betas": [0.9, 0.999], "eps": 1e-8}
    return OmegaConf.create({**base, **extra})


def trained_params(optimizer: str, impl: str, *, p: float = 2.0, mode: str = "coupled",
                   scope: str = "all", l1_ratio: float = 0.0, batch_size=None, lam: float = LAM) -> list:
    splits, model = small_problem()
    reg = Regularizer(model, lam=lam, p=p, mode=mode, scope=scope, optimizer=optimizer,
                      l1_ratio=l1_ratio, impl=impl)
    opt, sched = build_optimizer(optimizer_cfg(optimizer, 0.05 if optimizer == "sgd" else 0.01),
                                 reg.param_groups(), STEPS)
    result = train(model, splits, opt, sched, reg, steps=STEPS, batch_size=batch_size,
                   eval_every=STEPS, generator=torch.Generator().manual_seed(1))
    assert result.status == "completed"
    return [q.detach().clone() for q in model.parameters()]


def bare_loop(model: nn.Module, splits: Splits, opt: torch.optim.Optimizer) -> None:
    """Plain PyTorch: full-batch MSE steps under the same lr schedule as the harness runs."""
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(
        SCHEDULE["schedule"], STEPS, SCHEDULE["warmup_steps"], SCHEDULE["min_lr"]))
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.mse_loss(model(splits.x["train"]), splits.y["train"]).backward()
        opt.step()
        sched.step()


def assert_same(a: list, b: list, atol: float = 1e-6) -> None:
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


def assert_differs(a: list, b: list) -> None:
    assert max(float((x - y).abs().max()) for x, y in zip(a, b)) > 1e-4


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("scope", ["all", "weights"])
def test_coupled_l2_same_trajectory_three_ways(optimizer, scope):
    """A loss penalty through autograd, our gradient term and torch's own weight_decay agree."""
    via_loss = trained_params(optimizer, "loss", scope=scope, batch_size=8)
    via_grad = trained_params(optimizer, "manual", scope=scope, batch_size=8)
    via_torch = trained_params(optimizer, "optimizer", scope=scope, batch_size=8)
    assert_same(via_loss, via_grad)
    assert_same(via_grad, via_torch)
    assert_differs(via_grad, trained_params(optimizer, "manual", scope=scope, batch_size=8, p=3.0))


# p < 1 gets a small lam: near 0 its gradient is large (about lam * eps^(p-1)) and the
# trajectory chaotic, so rounding alone would separate two correct paths.
@pytest.mark.parametrize("p,l1_ratio,lam", [(1.0, 0.0, LAM), (1.5, 0.0, LAM), (3.0, 0.0, LAM),
                                            (0.5, 0.0, 1e-4), (2.0, 0.3, LAM)])
def test_coupled_general_p_gradient_equals_loss_penalty(p, l1_ratio, lam):
    via_loss = trained_params("sgd", "loss", p=p, l1_ratio=l1_ratio, scope="weights", lam=lam)
    via_grad = trained_params("sgd", "manual", p=p, l1_ratio=l1_ratio, scope="weights", lam=lam)
    assert_same(via_loss, via_grad)
    assert_differs(via_grad, trained_params("sgd", "manual", lam=0.0))


def test_optimizer_weight_decay_is_our_coupled_l2_on_all_parameters():
    """The weight-decay article's claim: SGD(weight_decay=lam) is L2 with our lam, every parameter included."""
    splits, model = small_problem()
    ours = trained_params("sgd", "manual", scope="all")
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=LAM)
    bare_loop(model, splits, opt)
    assert_same(ours, [q.detach() for q in model.parameters()])


def test_decoupled_l2_with_adam_is_torch_adamw():
    splits, model = small_problem()
    ours = trained_params("adam", "manual", mode="decoupled", scope="all")
    ours_native = trained_params("adamw", "optimizer", mode="decoupled", scope="all")
    bare_loop(model, splits, torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=LAM))
    reference = [q.detach() for q in model.parameters()]
    assert_same(ours, reference)
    assert_same(ours_native, reference)
    assert_differs(ours, trained_params("adam", "manual", mode="coupled", scope="all"))


def test_proximal_l1_gives_exact_zeros_and_soft_thresholds():
    w = nn.Parameter(torch.tensor([[0.30, -0.05, 0.10], [-0.40, 0.08, 0.0]]))
    model = nn.Module()
    model.w = w
    w.grad = torch.zeros_like(w)  # a step the optimizer took (a tensor without a gradient is not stepped)
    reg = Regularizer(model, lam=1.0, p=1.0, mode="proximal", scope="weights", optimizer="sgd")
    reg.after_step(lr=0.1)
    expected = torch.tensor([[0.20, 0.0, 0.0], [-0.30, 0.0, 0.0]])
    torch.testing.assert_close(w.detach(), expected)
    assert reg.sparsity() == pytest.approx(4 / 6)

    params = trained_params("sgd", "manual", p=1.0, mode="proximal", scope="weights")
    weights = [q for q in params if q.dim() >= 2]
    zeros = sum(int((q == 0).sum()) for q in weights)
    assert zeros > 0
    coupled = trained_params("sgd", "manual", p=1.0, mode="coupled", scope="weights")
    assert sum(int((q == 0).sum()) for q in coupled if q.dim() >= 2) == 0  # L1 in the gradient only shrinks


def test_proximal_l2_rescales_and_elastic_composes():
    model = nn.Module()
    model.w = nn.Parameter(torch.tensor([[1.0, -0.02]]))
    model.w.grad = torch.zeros_like(model.w)  # stepped by the optimizer
    Regularizer(model, lam=2.0, p=2.0, mode="proximal", scope="weights", optimizer="sgd").after_step(lr=0.1)
    torch.testing.assert_close(model.w.detach(), torch.tensor([[1.0 / 1.2, -0.02 / 1.2]]))
    model.w.data = torch.tensor([[1.0, -0.02]])
    Regularizer(model, lam=2.0, p=2.0, l1_ratio=0.5, mode="proximal", scope="weights",
                optimizer="sgd").after_step(lr=0.1)
    torch.testing.assert_close(model.w.detach(), torch.tensor([[0.9 / 1.1, 0.0]]))


def test_decoupled_general_p_follows_its_formula():
    model = nn.Module()
    w0 = torch.tensor([[0.5, -2.0, 0.0]])
    model.w = nn.Parameter(w0.clone())
    model.w.grad = torch.zeros_like(model.w)  # about to be stepped by the optimizer
    Regularizer(model, lam=0.1, p=3.0, mode="decoupled", scope="weights", optimizer="sgd",
                impl="manual").before_step(lr=0.5)
    torch.testing.assert_close(model.w.detach(), w0 - 0.5 * 0.1 * torch.sign(w0) * w0.abs() ** 2)


@pytest.mark.parametrize("l1_ratio", [0.0, 0.3])
@pytest.mark.parametrize("p", [0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_the_manual_gradient_is_autograds_gradient_of_the_penalty(p, l1_ratio):
    """The foreach update (coupled, impl=manual) adds exactly d(penalty)/dw to each grad."""
    gen = torch.Generator().manual_seed(3)
    model = nn.Module()
    model.a = nn.Parameter(torch.randn(7, 5, generator=gen, dtype=torch.float64))
    model.b = nn.Parameter(torch.randn(5, 3, generator=gen, dtype=torch.float64))
    reg = Regularizer(model, lam=0.7, p=p, mode="coupled", scope="weights", optimizer="sgd",
                      l1_ratio=l1_ratio, impl="manual")
    auto = torch.autograd.grad(reg._penalty(), [model.a, model.b])
    for q in (model.a, model.b):
        q.grad = torch.zeros_like(q)
    reg.before_step(lr=0.1)
    torch.testing.assert_close([model.a.grad, model.b.grad], list(auto))


@pytest.mark.parametrize("p", [0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_lp_grad_is_the_gradient_of_lp_term(p):
    """The single-tensor gradient the vectorized trainer uses, against autograd."""
    w = torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    w = w.requires_grad_()
    (auto,) = torch.autograd.grad(lp_term(w, p, 1e-3), w)
    torch.testing.assert_close(lp_grad(w.detach(), p, 1e-3), auto)


def test_p_below_one_stays_finite_at_zero():
    w = torch.zeros(4, requires_grad=True)
    value = lp_term(w, 0.5, 1e-3)
    (grad,) = torch.autograd.grad(value, w)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    params = trained_params("sgd", "manual", p=0.5, scope="weights")
    assert all(torch.isfinite(q).all() for q in params)


def test_penalty_value_follows_the_lambda_convention():
    model = nn.Module()
    model.w = nn.Parameter(torch.tensor([[1.0, -2.0]]))
    model.b = nn.Parameter(torch.tensor([3.0]))
    for p, expected in [(1.0, 3.0), (2.0, 2.5), (3.0, 3.0)]:
        reg = Regularizer(model, lam=0.5, p=p, mode="coupled", scope="weights", optimizer="sgd")
        assert reg.penalty() == pytest.approx(0.5 * expected)
    everything = Regularizer(model, lam=0.5, p=2.0, mode="coupled", scope="all", optimizer="sgd")
    assert everything.penalty() == pytest.approx(0.5 * (2.5 + 4.5))


def test_weights_scope_keeps_biases_out():
    _, model = small_problem()
    reg = Regularizer(model, lam=1.0, p=2.0, mode="coupled", scope="weights", optimizer="sgd")
    assert all(q.dim() >= 2 for _, q in reg.decayed)
    assert all(q.dim() == 1 for _, q in reg.kept)
    assert reg.summary()["decayed_params"] == 3 * 16 + 16 * 16 + 16 * 1
    assert reg.summary()["kept_params"] == 16 + 16 + 1
    assert [g["weight_decay"] for g in reg.param_groups()] == [1.0, 0.0]


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.AdamW])
@pytest.mark.parametrize("p,l1_ratio", [(1.0, 0.0), (2.0, 0.0), (2.0, 0.5)])
def test_proximal_under_adam_is_the_prox_in_adams_own_metric(optimizer, p, l1_ratio):
    """After one step of torch's own Adam, w = argmin_v lr*lam*P(v) + sum_i D_i (v_i - u_i)^2 / 2,
    u Adam's result and D its per-entry scale, read off the step torch took (at step 1 Adam's
    step is lr * g / D exactly); checked by the optimality conditions of that argmin."""
    gen = torch.Generator().manual_seed(5)
    model = nn.Module()
    model.w = nn.Parameter(torch.randn(8, 6, generator=gen, dtype=torch.float64))
    grad = torch.randn(8, 6, generator=gen, dtype=torch.float64)
    lam, lr = 3.0, 0.1
    reg = Regularizer(model, lam=lam, p=p, mode="proximal", scope="weights", optimizer="adam",
                      l1_ratio=l1_ratio)
    opt = optimizer(reg.param_groups(), lr=lr, weight_decay=0.0)
    reg.bind(opt)
    w0 = model.w.detach().clone()
    model.w.grad = grad
    opt.step()
    u = model.w.detach().clone()
    reg.after_step(lr)
    v = model.w.detach()
    d = lr * grad / (w0 - u)  # torch's own per-entry scale
    assert float(d.max() / d.min()) > 10  # a metric that differs from entry to entry
    t = lr * lam / d
    a = 1.0 if p == 1 else l1_ratio
    zero = v == 0
    assert bool(zero.any()) == (a > 0) and (~zero).any()  # pure L2 only shrinks
    # zero where |u| <= t*a; elsewhere (v - u) + t*(a*sign(v) + (1 - a)*v) = 0
    assert bool((u[zero].abs() <= t[zero] * a * (1 + 1e-12)).all())
    stationary = (v - u) + t * (a * torch.sign(v) + (1 - a) * v)
    torch.testing.assert_close(stationary[~zero], torch.zeros_like(v[~zero]), atol=1e-12, rtol=0)


def test_a_tensor_adam_never_stepped_is_left_alone():
    model = nn.Module()
    model.a, model.b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2, 2))
    reg = Regularizer(model, lam=1.0, p=1.0, mode="proximal", scope="weights", optimizer="adam")
    opt = torch.optim.Adam(reg.param_groups(), lr=0.1)
    reg.bind(opt)
    model.a.grad = torch.full((2, 2), 0.5)  # b gets no gradient: Adam skips it, and so does the prox
    opt.step()
    reg.after_step(0.1)
    assert float(model.a.detach().abs().max()) < 0.9 and bool((model.b == 1).all())


def test_momentum_correction_is_refused_under_adam():
    _, model = small_problem()
    reg = Regularizer(model, lam=LAM, p=2.0, mode="decoupled", scope="weights", optimizer="adam",
                      momentum_corrected=True)
    with pytest.raises(ValueError, match="momentum_corrected"):
        reg.bind(torch.optim.Adam(reg.param_groups(), lr=0.01))
