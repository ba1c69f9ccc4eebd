"""The Lightning callback with a real lightning.Trainer on the CPU: a LightningModule in the
second article's shape (the 1-200-200-200-1 MLP on 10 noisy points of y = 1.5x, SGD lr 0.01
momentum 0.9, an unchanged training_step) ends at the harness's weights; gradient accumulation,
mixed precision, several optimizers, checkpoint resume and logging work; misuse is refused."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from wdsweep.jobs.run import run, seed_and_draw_data
from wdsweep.train.models import build_model, data_info_of

L = pytest.importorskip("lightning")
from wdsweep.lightning import WeightPenalty  # noqa: E402

STEPS = 50

pytestmark = pytest.mark.filterwarnings(
    # Lightning's advice for real runs: more DataLoader workers, and a tip about its cloud logger.
    "ignore:The '.*dataloader' does not have many workers:UserWarning",
    "ignore:.*log_every_n_steps.*:UserWarning",
    "ignore:The dirpath has changed:UserWarning",  # a resumed run saves into a folder of its own
    "ignore:.*treespec, LeafSpec.*",  # Lightning 2.6 about torch 2.13's pytree
)


class ArticleModule(L.LightningModule):
    """The second article's module as its user has it: MSE in training_step, SGD(lr=0.01,
    momentum=0.9) in configure_optimizers. `penalty_in_loss` adds the article's own penalty to
    the loss instead (lam/p * sum |w|^p over the weight matrices, in wdsweep's lambda)."""

    def __init__(self, net: nn.Module, penalty_in_loss: float = 0.0, optimizer: str = "sgd") -> None:
        super().__init__()
        self.net, self.penalty_in_loss, self.optimizer_name = net, penalty_in_loss, optimizer

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        if self.penalty_in_loss:
            loss = loss + self.penalty_in_loss * sum(w.pow(2).sum() / 2 for n, w in self.named_parameters()
                                                     if w.dim() >= 2)
        return loss

    def configure_optimizers(self):
        if self.optimizer_name == "rmsprop":
            return torch.optim.RMSprop(self.parameters(), lr=0.01)
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def article_cfg(compose_cfg, *overrides):
    return compose_cfg([f"trainer.steps={STEPS}", f"trainer.eval_every={STEPS}", "optimizer.fused=false",
                        "reg.lam=1e-2", *overrides])


def initial_net_and_data(cfg):
    """The harness's data and initial weights for `cfg` (its seed), as a user's own net and
    DataLoader would hold them."""
    splits = seed_and_draw_data(cfg)
    net = build_model(cfg.model, data_info_of(splits))
    return net, torch.utils.data.TensorDataset(splits.x["train"], splits.y["train"])


def fit(module, data, *callbacks, batch_size: int = 10, steps: int = STEPS, ckpt_path=None, **options):
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=list(callbacks),
                        **{"logger": False, "enable_checkpointing": False, **options})
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=batch_size), ckpt_path=ckpt_path)
    return trainer


def harness_weights(cfg, tmp_path) -> dict:
    run(cfg, tmp_path / "job")
    return torch.load(tmp_path / "job" / "model.pt")


def assert_same_weights(net: nn.Module, reference: dict, atol: float = 1e-6) -> None:
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=atol, rtol=1e-5)


CASES = {  # harness overrides, and the callback's settings for the same regularizer
    "coupled-p1": (["reg.p=1"], dict(p=1)),
    "coupled-p2": (["reg.p=2"], dict(p=2)),
    "coupled-p3": (["reg.p=3"], dict(p=3)),
    "decoupled": (["reg=decoupled"], dict(mode="decoupled")),
    "proximal": (["reg=l1_prox", "reg.lam=1e-2"], dict(p=1, mode="proximal")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_callback_ends_where_the_harness_does(compose_cfg, tmp_path, case):
    """Full size: the article's 1-200-200-200-1 net, 50 full-batch steps."""
    overrides, settings = CASES[case]
    cfg = article_cfg(compose_cfg, *overrides)
    reference = harness_weights(cfg, tmp_path)
    net, data = initial_net_and_data(cfg)
    fit(ArticleModule(net), data, WeightPenalty(lam=1e-2, scope="weights", **settings))
    assert_same_weights(net, reference)
    unregularized, _ = initial_net_and_data(cfg)
    fit(ArticleModule(unregularized), data)  # and the decay mattered
    assert max(float((a - reference[k]).abs().max()) for k, a in unregularized.state_dict().items()) > 1e-4


def test_gradient_accumulation_decays_once_per_step(compose_cfg, tmp_path):
    """Two batches of 5 accumulated: one optimizer step with the full batch's gradient, one
    decay, the harness's full-batch run to float rounding."""
    cfg = article_cfg(compose_cfg, "reg.p=3", "model.width=32")
    reference = harness_weights(cfg, tmp_path)
    net, data = initial_net_and_data(cfg)
    fit(ArticleModule(net), data, WeightPenalty(lam=1e-2, p=3), batch_size=5, accumulate_grad_batches=2)
    assert_same_weights(net, reference)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_decays_the_true_gradient(compose_cfg, precision):
    """Under autocast the coupled decay equals the article's penalty in the loss. For 16-mixed,
    Lightning's own MixedPrecision plugin with its GradScaler (on the CPU, Trainer(precision=
    "16-mixed") would fall back to bf16-mixed): the loss is scaled by 65536, and the decay is
    added to the unscaled gradient, between Lightning's unscale_ and the scaler's step."""
    cfg = article_cfg(compose_cfg, "model.width=32")
    options = ({"precision": precision} if precision == "bf16-mixed" else
               {"plugins": [L.pytorch.plugins.MixedPrecision("16-mixed", "cpu")]})
    ours, data = initial_net_and_data(cfg)
    trainer = fit(ArticleModule(ours), data, WeightPenalty(lam=0.1, p=2), **options)
    scaler = trainer.precision_plugin.scaler
    assert (scaler is None) == (precision == "bf16-mixed") and (scaler is None or scaler.get_scale() >= 2 ** 10)
    by_hand, _ = initial_net_and_data(cfg)
    fit(ArticleModule(by_hand, penalty_in_loss=0.1), data, **options)
    assert_same_weights(ours, by_hand.state_dict(), atol=1e-5)
    # and not a decay 65536 times too small (added to scaled gradients): none at all is far off
    unregularized, _ = initial_net_and_data(cfg)
    fit(ArticleModule(unregularized), data, **options)
    far = unregularized.state_dict()
    assert max(float((value - far[key]).abs().max()) for key, value in ours.state_dict().items()) > 1e-3


class TwoOptimizers(L.LightningModule):
    """Manual optimization: the first layers and the rest each with their own optimizer and lr
    schedule (as a GAN's generator and discriminator would be)."""

    def __init__(self, net: nn.Sequential) -> None:
        super().__init__()
        self.net, self.automatic_optimization = net, False

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizers, schedulers = self.optimizers(), self.lr_schedulers()
        for opt in optimizers:
            opt.zero_grad()
        self.manual_backward(F.mse_loss(self.net(x), y))
        for opt, schedule in zip(optimizers, schedulers):
            opt.step()
            schedule.step()

    def configure_optimizers(self):
        optimizers = two_optimizers(self.net)
        return optimizers, [torch.optim.lr_scheduler.StepLR(opt, 10, gamma=0.5) for opt in optimizers]


def two_optimizers(net: nn.Sequential):
    return [torch.optim.SGD(net[:2].parameters(), lr=0.05, momentum=0.9),
            torch.optim.Adam(net[2:].parameters(), lr=0.01)]


def test_several_optimizers_and_schedulers_each_decay_their_part(compose_cfg):
    """The same two optimizers and schedules in a plain loop with the public API are the reference."""
    from wdsweep import WeightPenalty as PlainPenalty

    cfg = article_cfg(compose_cfg, "model.width=32")
    ours, data = initial_net_and_data(cfg)
    steps = 30  # Lightning counts each optimizer's step: 30 batches
    fit(TwoOptimizers(ours), data, WeightPenalty(lam=0.05, p=1, mode="proximal"), steps=2 * steps)

    plain, _ = initial_net_and_data(cfg)
    optimizers = two_optimizers(plain)
    schedules = [torch.optim.lr_scheduler.StepLR(opt, 10, gamma=0.5) for opt in optimizers]
    PlainPenalty(plain, lam=0.05, p=1, mode="proximal").attach(*optimizers)
    x, y = data.tensors
    for _ in range(steps):
        for opt in optimizers:
            opt.zero_grad()
        F.mse_loss(plain(x), y).backward()
        for opt, schedule in zip(optimizers, schedules):
            opt.step()
            schedule.step()
    assert_same_weights(ours, plain.state_dict())
    assert all(bool((w == 0).any()) for w in (ours[0].weight, ours[-1].weight))  # both parts: exact zeros


def test_a_checkpoint_resumes_the_same_run_and_refuses_other_settings(compose_cfg, tmp_path):
    cfg = article_cfg(compose_cfg, "model.width=32")
    straight, data = initial_net_and_data(cfg)
    fit(ArticleModule(straight), data, WeightPenalty(lam=0.05, p=1, mode="proximal"), steps=40)

    resumed, _ = initial_net_and_data(cfg)
    def saver(folder: str):
        return L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / folder, save_last=True)

    fit(ArticleModule(resumed), data, WeightPenalty(lam=0.05, p=1, mode="proximal"), saver("first"), steps=20,
        enable_checkpointing=True)
    checkpoint = torch.load(tmp_path / "first" / "last.ckpt", weights_only=False)
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("WeightPenalty")]
    assert state["settings"] == {"lam": 0.05, "p": 1, "scope": "weights", "mode": "proximal", "l1_ratio": 0.0,
                                 "eps": 1e-3, "momentum_corrected": False}
    resumed, _ = initial_net_and_data(cfg)  # a new process would start from fresh weights
    fit(ArticleModule(resumed), data, WeightPenalty(lam=0.05, p=1, mode="proximal"), saver("resumed"), steps=40,
        ckpt_path=tmp_path / "first" / "last.ckpt", enable_checkpointing=True)
    assert_same_weights(resumed, straight.state_dict(), atol=0)

    with pytest.raises(ValueError) as err:
        fit(ArticleModule(resumed), data, WeightPenalty(lam=0.01, p=1, mode="proximal"), saver("refused"), steps=60,
            ckpt_path=tmp_path / "first" / "last.ckpt", enable_checkpointing=True)
    assert str(err.value) == ("WeightPenalty: the checkpoint was trained with lam=0.05 (now 0.01): resume with "
                              "the same settings, or load its weights alone to start a new run")


def test_a_checkpoint_trained_without_the_penalty_is_not_resumed_under_it(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(10, 2), torch.randn(10, 1))
    fit(ArticleModule(nn.Linear(2, 1)), data, steps=2).save_checkpoint(tmp_path / "plain.ckpt")
    module = ArticleModule(nn.Linear(2, 1))
    before = module.net.weight.detach().clone()
    with pytest.raises(ValueError) as err:
        fit(module, data, WeightPenalty(lam=0.1, p=1), steps=4, ckpt_path=tmp_path / "plain.ckpt")
    assert str(err.value) == (f"WeightPenalty: the checkpoint {str(tmp_path / 'plain.ckpt')!r} was trained without "
                              "WeightPenalty (it holds no WeightPenalty state): resume it without the callback, or "
                              "load its weights alone (LightningModule.load_from_checkpoint, then fit without "
                              "ckpt_path) to start a new run under the penalty")
    plain = torch.load(tmp_path / "plain.ckpt", weights_only=False)["state_dict"]["net.weight"]
    torch.testing.assert_close(module.net.weight.detach(), plain)  # restored, and no step taken after
    assert not torch.equal(plain, before)


def test_it_logs_the_penalty_weight_norm_and_sparsity(compose_cfg, tmp_path):
    import pandas as pd

    cfg = article_cfg(compose_cfg, "model.width=32")
    net, data = initial_net_and_data(cfg)
    logger = L.pytorch.loggers.CSVLogger(tmp_path, name="run")
    fit(ArticleModule(net), data, WeightPenalty(lam=0.05, p=1, mode="proximal"), steps=20, logger=logger,
        log_every_n_steps=5)
    rows = pd.read_csv(next(tmp_path.glob("run/*/metrics.csv")))
    logged = rows.dropna(subset=["train/reg_loss"])
    assert list(logged["step"]) == [4, 9, 14, 19]  # after optimizer steps 5, 10, 15, 20 (Lightning's step index)
    last = logged.iloc[-1]
    weights = [w.detach() for w in net.parameters() if w.dim() >= 2]
    assert last["train/reg_loss"] == pytest.approx(0.05 * float(sum(w.abs().sum() for w in weights)), rel=1e-5)
    assert last["train/weight_norm"] == pytest.approx(float(sum(w.pow(2).sum() for w in weights)) ** 0.5,
                                                      rel=1e-5)
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert 0 < last["train/sparsity"] == pytest.approx(zeros)


def test_an_optimizer_it_cannot_follow_is_refused_before_any_step(compose_cfg):
    cfg = article_cfg(compose_cfg, "model.width=32")
    net, data = initial_net_and_data(cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as err:
        fit(ArticleModule(net, optimizer="rmsprop"), data, WeightPenalty(lam=0.01, p=1, mode="proximal"))
    assert str(err.value) == ("WeightPenalty: no proximal step is defined for RMSprop: SGD, Adam or AdamW "
                              "(mode='coupled' works with any optimizer)")
    assert_same_weights(net, before, atol=0)
    with pytest.raises(ValueError) as err:  # bad settings: when the Trainer's callbacks are built
        WeightPenalty(lam=0.01, p=0)
    assert str(err.value) == "WeightPenalty: p=0 is not allowed: a finite number > 0 (p < 1 is smoothed by eps)"


def test_without_lightning_the_import_fails_in_one_line():
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.modules['lightning'] = None; "
                           "import wdsweep.lightning"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: wdsweep.lightning needs Lightning: pip install 'wdsweep[lightning]'")

