"""The documentation: the config reference generated from the schemas describes every key the
composed configs hold, the README stays a front door whose links resolve, and no page cites a
file users do not have. (`mkdocs build --strict`, run by .ci/run, checks the site's own links
and nav.)"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Iterator

import pytest
from omegaconf import DictConfig, OmegaConf

from wdsweep.config.reference import undocumented
from wdsweep.config.schema import _GROUP_SCHEMAS

ROOT = Path(__file__).resolve().parent.parent
# Modules wdsweep had before its wings (and the wings): a `wdsweep.<one of them>...` on a page
# must name something that exists. (`wdsweep.overrides` and the like are MLflow tags.)
MODULE_NAMES = {"app", "canonical", "data", "datasets", "errors", "finalists", "func_net", "hydra_callbacks",
                "images", "inprocess", "journal", "lifeline", "memory", "mlflow_export", "models", "monitors",
                "optimizers", "override_text", "regularizers", "results", "resume", "run", "schema",
                "search_spaces", "splits", "submitit_launch", "threads", "training", "trial_link", "trial_outcome",
                "validation", "vectorized", "config", "train", "batched", "jobs", "tracking", "search", "cluster"}


def reference_hook():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs" / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaf_keys(node, prefix: str = "") -> Iterator[str]:
    for key in node:
        value = node._get_node(key) if isinstance(node, DictConfig) else None
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig) and not OmegaConf.is_missing(node, key) and \
                not (path.startswith(("data.", "model.")) and path.count(".") > 1):
            yield from leaf_keys(value, path + ".")
        elif not str(key).startswith("_"):
            yield path


def test_every_config_key_has_a_description():
    """A schema field without a comment fails here, naming it: the reference would show it bare."""
    assert undocumented(reference_hook().sections()) == []


@pytest.mark.parametrize("group", ["data", "model", "optimizer", "logger"])
def test_the_reference_lists_every_key_of_every_composed_option(compose_cfg, group):
    """Every key of the configs `python -m wdsweep` composes (each option of each group, and the
    top level with reg and trainer) is on the generated page, under its option's heading."""
    page = reference_hook().page()
    sections = re.split(r"^### ", page, flags=re.M)
    for option in _GROUP_SCHEMAS[group]:
        cfg = compose_cfg([f"{group}={option}"])
        (section,) = [s for s in sections if s.startswith(f"`{group}={option}`")]
        missing = [k for k in leaf_keys(cfg[group], f"{group}.") if f"`{k}`" not in section]
        assert missing == [], (option, missing)
    top = [k for k in leaf_keys(compose_cfg([])) if k.split(".")[0] in ("reg", "trainer", "seed", "objective")]
    assert top and [k for k in top if f"`{k}`" not in page] == []


def test_the_readme_is_a_front_door_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\((?!https?://|#)([^)#]+)", text)
    assert links, "the README links into the docs"
    assert [link for link in links if not (ROOT / link).exists()] == []
    assert "<!-- test-command" in text  # .ci/run runs the block below it


def test_no_page_cites_a_file_users_do_not_have():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(pages) > 10
    cited = [(page.name, hit) for page in pages
             for hit in re.findall(r"DESIGN\.md|\.\./shared|seeds/|/work/", page.read_text())]
    assert cited == []
    # ...nor a module path the code no longer has (the wings moved modules; public paths stay)
    for page in pages:
        for path in set(re.findall(r"\bwdsweep/[\w/]+\.py\b", page.read_text())):
            assert (ROOT / path).exists(), (page.name, path)
        for dotted in set(re.findall(r"`(wdsweep(?:\.\w+)+)", page.read_text())):
            if dotted.split(".")[1] in MODULE_NAMES:
                assert resolves(dotted), (page.name, dotted)


def resolves(dotted: str) -> bool:
    """Whether `dotted` names a module of ours, or something in one (a class, a function)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name, None)
        return found is not None
    return False


def test_list_config_values_render_as_lists():
    """A default that is a list ([16, 32]) is shown as one, not as a factory."""
    page = reference_hook().page()
    assert "`[16, 32]`" in page and "<function" not in page
