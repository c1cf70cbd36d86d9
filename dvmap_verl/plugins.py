"""Plugins: code outside the package that registers readouts, backends or metrics before a command runs.

Two ways to name one, both read once per process (the registries call :func:`load_plugins` before they answer):

- an installed distribution's entry point in the group ``dvmap_verl.plugins`` (in its ``pyproject.toml``:
  ``[project.entry-points."dvmap_verl.plugins"] my_readout = "my_package.readout"``): the module is imported;
- the environment variable ``DVMAP_PLUGINS``: module names separated by commas (``DVMAP_PLUGINS=my_readout``), for a
  script on ``PYTHONPATH`` that is not packaged.

Importing the module is all that happens: it registers what it adds at import time (``register_readout``,
``register_backend``, ``register_metric``). A plugin that cannot be imported is an
:class:`~dvmap_verl.errors.EnvironmentProblem` naming it and where it was named, never skipped silently.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from dvmap_verl.errors import EnvironmentProblem

ENTRY_POINT_GROUP = "dvmap_verl.plugins"
ENV_VAR = "DVMAP_PLUGINS"

_loaded: list[str] = []
_started = False


def plugin_modules() -> list[tuple[str, str]]:
    """``(module, where it was named)`` for every plugin: entry points first, then ``DVMAP_PLUGINS``, each once."""
    named: list[tuple[str, str]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        named.append((ep.value.split(":")[0].strip(), f"entry point {ep.name!r} of group {ENTRY_POINT_GROUP}"))
    for module in os.environ.get(ENV_VAR, "").split(","):
        if module.strip():
            named.append((module.strip(), f"${ENV_VAR}"))
    seen: set[str] = set()
    return [(m, where) for m, where in named if not (m in seen or seen.add(m))]


def load_plugins() -> list[str]:
    """Import every plugin module once per process; returns the modules imported. Raises
    :class:`EnvironmentProblem` naming a module that cannot be imported (and where it was named)."""
    global _started
    if _started:  # set before importing: a plugin that asks a registry for names does not recurse
        return list(_loaded)
    _started = True
    for module, where in plugin_modules():
        try:
            importlib.import_module(module)
        except Exception as e:  # a plugin's own bug is still the user's environment: say which plugin
            _started = False  # asked again, it fails again: never a registry quietly without the plugin
            raise EnvironmentProblem(f"plugin {module!r} (named by {where}) cannot be imported: "
                                     f"{type(e).__name__}: {e}") from e
        _loaded.append(module)
    return list(_loaded)
