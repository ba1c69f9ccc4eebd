"""ConfigError: a config value is not allowed. At the bottom of the package: every module may
import it (the data loaders, validation, the sweepers, the app) and it imports nothing of ours."""
from __future__ import annotations

import sys
from typing import NoReturn

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException):
    """A config value is not allowed. Hydra prints only the message, on one line."""

    def exit(self) -> NoReturn:
        """End the program with this error as its one line on stderr, exit status 1."""
        sys.exit(f"wdsweep: {self}")
