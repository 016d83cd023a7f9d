"""dipi_abm: an agent-based model of peer-to-peer distributed-energy trading
under a blockchain credit mechanism (DIPI credit, POCA consensus).

>>> from dipi_abm import DIPIModel
>>> model = DIPIModel(seed=1, hours=24).run()
"""

from .errors import ConfigError
from .model import DIPIModel

__all__ = ["ConfigError", "DIPIModel", "__version__"]
__version__ = "0.1.0"
