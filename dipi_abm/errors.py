"""Errors raised for bad input, before a run starts."""

from __future__ import annotations


class ConfigError(ValueError):
    """A parameter, grid or file is invalid.

    The message is one line that names the key or file and what is allowed;
    the command line prints it and exits with status 2.
    """
