"""chansim: speculative decoding measured with information theory.

Import the modules you need; the heavy ones (``chansim.llm``: torch + transformers,
``chansim.figures``: matplotlib) are not imported here::

    from chansim import channel, verify, simulate, theory, predict
    from chansim.inputs import distributions, trees      # what a user hands chansim
    from chansim.sampling import races                   # exponential races and samplers
    from chansim.common import stats                     # intervals, outputs, the parallel map

The light modules are also attributes of the package (``from chansim import distributions``).
"""
__version__ = "0.1.0"

from . import channel, predict  # noqa: E402  (light modules)
from .inputs import distributions, trees  # noqa: E402
from .sampling import races, sources  # noqa: E402

__all__ = ["channel", "distributions", "predict", "races", "sources", "trees", "__version__"]
