"""Your model: any `_target_` in the user's own folder and config dir, told the data's shapes,
refused with one line before any job when it cannot build or does not fit the data."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from wdsweep.train.models import DataInfo, build_model, model_label

from conftest import job_dirs, read_metrics, run_analysis, run_cli, run_wdsweep

USER_MODULE = '''
"""A user's own model, in the user's own folder."""
from torch import nn


class Net(nn.Module):
    def __init__(self, n_features, n_outputs, hidden=32, dropout_free=True):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh())
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, n_outputs)

    def forward(self, x):
        return self.out(self.norm(self.body(x)))


def not_a_module(n_features, n_outputs):
    return {"n_features": n_features}


def broken(n_features, n_outputs):
    raise RuntimeError("the user's constructor fails")
'''

CONFIGS = {
    "model/mynet.yaml": "_target_: mynet.Net\nhidden: 24\n",
    "model/wrong_width.yaml": "_target_: mynet.Net\nn_outputs: 3\n",
    "model/not_module.yaml": "_target_: mynet.not_a_module\n",
    "model/broken.yaml": "_target_: mynet.broken\n",
    "model/missing.yaml": "_target_: mynet.NoSuchNet\n",
}


@pytest.fixture
def user_repo(tmp_path) -> Path:
    """A folder as a user would have it: their module and their conf/, nothing of ours."""
    (tmp_path / "mynet.py").write_text(USER_MODULE)
    for name, text in CONFIGS.items():
        path = tmp_path / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_target_gets_the_data_shapes_it_asks_for_and_the_config_wins(compose_cfg):
    cfg = compose_cfg(["model=mlp", "model.depth=1", "model.width=8"])
    assert cfg.model._target_ == "wdsweep.models.mlp" and model_label(cfg.model) == "mlp"
    net = build_model(cfg.model, DataInfo(n_features=5, n_outputs=3, task="classification"))
    assert net[0].in_features == 5 and net[-1].out_features == 3
    cnn = build_model(compose_cfg(["model=cnn"]).model,
                      DataInfo(n_features=64, n_outputs=10, task="classification", image_shape=(1, 8, 8)))
    assert cnn(torch.zeros(2, 64)).shape == (2, 10)


@pytest.mark.integration
def test_a_users_model_from_their_own_folder_sweeps_and_is_analysed(user_repo):
    proc = run_wdsweep(["--config-dir", "conf", "-m", "model=mynet", "data=digits", "data.n_train=200",
                    "reg.lam=0,1e-3", "reg.scope=weights,all", "trainer.steps=20", "trainer.eval_every=10",
                    "hydra.sweep.dir=sweep"], cwd=user_repo)
    assert proc.returncode == 0, proc.stderr
    runs = [read_metrics(d) for d in job_dirs(user_repo / "sweep")]
    assert len(runs) == 4 and all(r["status"] == "completed" for r in runs)
    trained = [r for r in runs if "same_as" not in r]
    weights_only = next(r for r in trained if r["config"]["reg"]["scope"] == "weights"
                        and r["config"]["reg"]["lam"] > 0)
    # Net: two Linear weights decay; their biases and the LayerNorm's weight and bias do not.
    assert weights_only["decay"]["decayed_tensors"] == 2 and weights_only["decay"]["kept_tensors"] == 4
    assert weights_only["decay"]["decayed_params"] == 64 * 24 + 24 * 10
    assert weights_only["config"]["model"] == {"_target_": "mynet.Net", "hidden": 24}
    # The analysis in this process (run_analysis); its command line is tested elsewhere.
    done = run_analysis(user_repo / "sweep", "--out", user_repo / "report")
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(user_repo / "report" / "runs.csv")
    assert len(table) == 4 and set(table["model._target_"]) == {"mynet.Net"}
    assert (user_repo / "report" / "test_error_vs_lambda.png").stat().st_size > 10_000

    from analysis.figures import title_of
    assert title_of(table).split(" · ")[1] == "net"  # the chart titles name the user's model

    # The search trains its two trials as one vmap'ed batch of the user's module.
    search = run_wdsweep(["--config-dir", "conf", "-m", "model=mynet", "search=optuna", "data=digits",
                      "data.n_train=200", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                      "hydra/launcher=vectorized", "trainer.steps=10", "trainer.eval_every=10",
                      "hydra.sweep.dir=search"], cwd=user_repo)
    assert search.returncode == 0, search.stderr
    assert "training 2 jobs as one batched model" in search.stdout + search.stderr
    trials = [read_metrics(d) for d in job_dirs(user_repo / "search")]
    assert len(trials) == 2 and all(t["config"]["model"]["_target_"] == "mynet.Net" for t in trials)


BAD_MODELS = {
    "wrong_width": ["model._target_='mynet.Net' is not allowed", "an output of shape (batch, 10)",
                    "it gives (2, 3)"],
    "not_module": ["model._target_='mynet.not_a_module' is not allowed", "not a torch.nn.Module"],
    "broken": ["model._target_='mynet.broken' is not allowed", "the user's constructor fails"],
    "missing": ["model._target_='mynet.NoSuchNet' is not allowed", "an importable class or function"],
}


@pytest.mark.integration
def test_a_model_that_cannot_train_here_is_one_line_before_any_job(user_repo):
    """In a sweep beside a good model: nothing trains, nothing is written. (One bad model
    through the command line; each way a model can be bad is checked in-process below.)"""
    before = sorted(user_repo.rglob("*"))
    proc = run_cli(["--config-dir", "conf", "-m", "model=mynet,wrong_width", "data=digits",
                    "trainer.steps=5", "hydra.sweep.dir=sweep"], cwd=user_repo)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in BAD_MODELS["wrong_width"]:
        assert needle in lines[0], lines[0]
    assert lines[0].startswith("wdsweep: invalid config: ") and "[job: model=wrong_width" in lines[0]
    assert sorted(p for p in user_repo.rglob("*") if "__pycache__" not in p.parts) == \
        [p for p in before if "__pycache__" not in p.parts]


@pytest.fixture
def user_models(user_repo, monkeypatch):
    """compose(model) -> the job config of `--config-dir conf model=...` run in user_repo, with
    user_repo importable as `python -m wdsweep` makes its working folder."""
    monkeypatch.syspath_prepend(str(user_repo))
    monkeypatch.delitem(sys.modules, "mynet", raising=False)
    from hydra import compose, initialize_config_dir

    from wdsweep.app import CONFIG_DIR

    def _compose(model: str):
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=[
                f"hydra.searchpath=[file://{user_repo / 'conf'}]", f"model={model}", "data=digits",
                "trainer.steps=5"])

    yield _compose
    sys.modules.pop("mynet", None)


@pytest.mark.parametrize("model", list(BAD_MODELS))
def test_each_way_a_model_cannot_train_here_is_named_in_one_line(user_models, model):
    from wdsweep.config.validation import ConfigError, validate

    validate(user_models("mynet"))  # the good model beside them passes
    with pytest.raises(ConfigError) as info:
        validate(user_models(model))
    message = str(info.value)
    assert message.startswith("invalid config: ") and "\n" not in message, message
    for needle in BAD_MODELS[model]:
        assert needle in message, message


def test_resnet20_has_the_papers_shape_and_decays_only_its_kernels(compose_cfg):
    """He et al.'s CIFAR ResNet-20 (option A shortcuts): 0.27M parameters; weights-only decay
    takes the 19 convolution kernels and the read-out matrix, and keeps every BatchNorm gain
    and shift and the read-out bias."""
    from wdsweep.train.regularizers import Regularizer

    cfg = compose_cfg(["model=resnet"])
    net = build_model(cfg.model, DataInfo(n_features=3072, n_outputs=10, task="classification",
                                          image_shape=(3, 32, 32)))
    assert sum(p.numel() for p in net.parameters()) == 269_722
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19 and all(m.bias is None for m in convs)
    summary = Regularizer(net, lam=1e-4, p=2, mode="coupled", scope="weights", optimizer="sgd").summary()
    assert (summary["decayed_tensors"], summary["decayed_params"]) == (20, 268_336)
    assert (summary["kept_tensors"], summary["kept_params"]) == (39, 1_386)
    assert net(torch.zeros(2, 3072)).shape == (2, 10)


def test_resnet_evaluates_with_its_running_statistics(compose_cfg, tmp_path):
    """Evaluation is in eval mode: BatchNorm uses the running statistics that training
    updated, so the saved model, evaluated alone in eval mode, gives the recorded errors."""
    from wdsweep.jobs.run import run
    from wdsweep.train.data import build_splits
    from wdsweep.train.models import data_info_of

    cfg = compose_cfg(["model=resnet", "data=digits", "data.n_train=300", "trainer.steps=30",
                       "trainer.eval_every=30", "trainer.batch_size=32", "optimizer.lr=0.05"])
    run(cfg, tmp_path)
    record = read_metrics(tmp_path)
    assert record["status"] == "completed" and record["thread_independent"] is False
    assert (record["decay"]["decayed_tensors"], record["decay"]["kept_tensors"]) == (20, 39)
    splits = build_splits(cfg.data, cfg.seed, torch.Generator().manual_seed(cfg.seed))
    net = build_model(cfg.model, data_info_of(splits))
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    net.load_state_dict(state)
    assert state["bn.running_mean"].abs().sum() > 0 and int(state["bn.num_batches_tracked"]) == 30
    net.eval()
    with torch.no_grad():
        val = (net(splits.x["val"]).argmax(1) != splits.y["val"]).float().mean().item()
        alone = net(splits.x["val"][:1])
        in_batch = net(splits.x["val"][:7])[:1]
    assert val == pytest.approx(record["val_error"], abs=1e-7)
    torch.testing.assert_close(alone, in_batch)  # eval mode: no batch statistics


class _Squeezed(torch.nn.Module):
    def __init__(self, n_features, n_outputs):
        super().__init__()
        self.out = torch.nn.Linear(n_features, n_outputs)

    def forward(self, x):
        return self.out(x).squeeze(-1)


def test_a_regression_output_of_shape_n_is_refused(compose_cfg):
    """Against (n, 1) targets an (n,) output would make the MSE an (n, n) broadcast."""
    from omegaconf import OmegaConf

    from wdsweep.train.models import model_problem

    cfg = OmegaConf.create({"_target_": f"{__name__}._Squeezed"})
    problem = model_problem(cfg, DataInfo(n_features=1, n_outputs=1, task="regression"))
    assert problem and "an output of shape (batch, 1)" in problem and "it gives (2,)" in problem
    assert model_problem(compose_cfg(["model=linear"]).model,
                         DataInfo(n_features=1, n_outputs=1, task="regression")) is None
