"""The public path of the example search-space hooks (`custom_search_space: wdsweep.search_spaces.lp_with_proximal`).

Configs, sweep folders and their config hashes name this path, so it stays: importing it gives
the module wdsweep.config.search_spaces itself (one module under two names, not a copy), where the code lives.
"""
import sys

from wdsweep.config import search_spaces as _search_spaces

sys.modules[__name__] = _search_spaces
