"""The project's own error types: what ``dvmap`` reports as bad input (exit 2, one line).

Everything the package raises for bad input (a file, column, row, value or option the user gave) derives from
:class:`DvmapError`. ``dvmap``'s ``main`` catches only this base class; any other exception is a bug and is shown
with its traceback. Subclasses keep the built-in type they replace as a second base (``InputError`` is also a
``ValueError``), so callers that caught the built-in type keep working.
"""

from __future__ import annotations


class DvmapError(Exception):
    """Base class of every error the package raises for bad input or an unusable environment."""


class InputError(DvmapError, ValueError):
    """A file, column, row, value or option given by the user is unusable; the message names which."""


class MissingInputError(DvmapError, FileNotFoundError):
    """A file or folder the command needs does not exist; the message names it and how to make it."""


class EnvironmentProblem(DvmapError, RuntimeError):
    """The machine or installation cannot do what was asked (a missing package, no GPU, a locked run)."""


class MissingPackage(EnvironmentProblem, ImportError):
    """An optional package a command needs is not installed; the message names the ``pip install`` that adds it."""
