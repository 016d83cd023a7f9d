"""dipi_abm: an agent-based model of peer-to-peer distributed-energy trading
under a blockchain credit mechanism (DIPI credit, POCA consensus).

>>> from dipi_abm import DIPIModel
>>> model = DIPIModel(seed=1, hours=24).run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .model import DIPIModel

__all__ = ["ConfigError", "DIPIModel", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The model (and with it Mesa, pandas and scipy) loads on first use, so the
    # commands that do not run it (`dipi-abm keys`, `verify-ledger`, `--help`) start fast.
    if name == "DIPIModel":
        from .model import DIPIModel

        return DIPIModel
    raise AttributeError(f"module 'dipi_abm' has no attribute {name!r}")
