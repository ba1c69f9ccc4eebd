"""hydra.sweeper.dry_run: what the search would do, printed; nothing asked, trained or written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from wdsweep.errors import ConfigError
from wdsweep.search.space import SearchSpace
from wdsweep.search.study import replication_text
from wdsweep.search.trials import FINISHED, REPLICATION_ATTR, fail_reason, override_value


class DryRun:
    """Printing the plan; uses the settings and hydra_context."""

    def _print_plan(self, space: SearchSpace, study_name: str, storage_spec: str) -> None:
        """hydra.sweeper.dry_run: what the search would do, on stdout; nothing asked or written.
        A journal file is read if it exists; a storage URL is not opened (opening an RDB
        storage may create its tables)."""
        from wdsweep.config.validation import validate

        sample = {key: first_value(dist) for key, dist in space.distributions.items()}
        job = [f"{k}={v}" for k, v in space.fixed.items() if k not in sample] + \
              [f"{k}={override_value(v)}" for k, v in sample.items()]
        try:
            validate(self.hydra_context.config_loader.load_sweep_config(self.config, job))
            checked = "valid"
        except Exception as err:  # noqa: BLE001 - said, as the sweep would fail that trial
            checked = f"invalid ({fail_reason(err)})"
        held = "a URL storage is not opened in a dry run"
        finished = 0
        if "://" not in storage_spec:
            held = "new study (no journal file yet)"
            if Path(storage_spec).is_file():
                from optuna.storages.journal import JournalFileBackend

                storage = optuna.storages.JournalStorage(JournalFileBackend(storage_spec))
                found = [s for s in optuna.get_all_study_summaries(storage) if s.study_name == study_name]
                if found and found[0].user_attrs.get(REPLICATION_ATTR) != self._replication():
                    # what the sweep itself would say, as it would say it (one line, exit 1)
                    ConfigError(f"invalid search: study {study_name!r} in {storage_spec} was run with "
                                f"{replication_text(found[0].user_attrs.get(REPLICATION_ATTR))}, not "
                                f"{replication_text(self._replication())}: give another "
                                "hydra.sweeper.study_name").exit()
                if found:
                    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
                    states = {s.name: sum(t.state == s for t in trials) for s in TrialState}
                    finished = sum(states[s.name] for s in FINISHED)
                    held = f"{len(trials)} trials already (" + ", ".join(
                        f"{n} {name.lower()}" for name, n in states.items() if n) + ")" if trials else "no trial yet"
        per_trial = f"{len(self.seeds)} seeds {self.seeds}" if self.seeds else "one run"
        print(f"dry run: study {study_name!r} in {storage_spec}: {held}; would ask up to "
              f"{max(0, self.n_trials - finished)} more trial(s) to reach n_trials={self.n_trials}, "
              + (f"{self.workers} workers pulling one trial each" if self.workers > 1 else
                 f"{self.n_jobs} at a time") + f", each {per_trial}"
              + (f", then {self.finalists} finalist(s) on fresh seeds" if self.finalists else "")
              + "; nothing asked, trained or written")
        for key, dist in space.distributions.items():
            print(f"  search {key}: {dist}")
        for key, value in space.fixed.items():
            print(f"  fixed  {key}={value}")
        print(f"  a sample point's config ({' '.join(job)}): {checked}")


def first_value(dist: optuna.distributions.BaseDistribution) -> Any:
    """A point of the distribution, for a dry run's sample config: its first choice or its low end."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low
