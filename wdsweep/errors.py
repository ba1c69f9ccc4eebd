"""ConfigError: a config value is not allowed; DataProblem: the user's data or files are not
usable. At the bottom of the package: every module may import them (the data loaders and their
row readers, validation, the sweepers, the app) and they import nothing of ours."""
from __future__ import annotations

import sys
from typing import NoReturn

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """A config value is not allowed. Hydra prints only the message, on one line."""

    def exit(self) -> NoReturn:
        """End the program with this error as its one line on stderr, exit status 1."""
        sys.exit(f"wdsweep: {self}")


class DataProblem(ValueError):
    """What is wrong with the user's data or files, in one line (validation names the key)."""
