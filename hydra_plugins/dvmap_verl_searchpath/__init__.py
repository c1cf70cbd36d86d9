"""Hydra search-path plugin: makes ``+recipe=dvmap_qwen3_8b`` resolve from any working directory.

Hydra imports every module under the ``hydra_plugins`` namespace in every Hydra app, so this stays tiny.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DVMapSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Appended, not prepended: verl's own configs keep priority; only the `recipe` group is added.
        search_path.append(provider="dvmap-verl", path="pkg://dvmap_verl.recipes")
