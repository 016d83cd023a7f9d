"""The interactive dashboard's machinery, free of Solara so it is tested on its own.

- :mod:`.controls`: parameter controls from the scenario registry, and their checking;
- :mod:`.views`: a snapshot of the model and the figures and numbers drawn from it;
- :mod:`.runner`: one session's model, built and stepped on its own thread;
- :mod:`.server`: ``dipi-abm app`` (``solara run dipi_abm/app.py``).

The page itself (Solara components) is :mod:`dipi_abm.app`.
"""

from .server import serve

__all__ = ["serve"]
