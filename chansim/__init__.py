"""chansim: speculative decoding measured with information theory.

Import the modules you need; the heavy ones (``chansim.llm``: torch + transformers,
``chansim.figures``: matplotlib) are not imported here::

    from chansim import distributions, races, channel, trees, verify, simulate, theory, predict
"""
__version__ = "0.1.0"

from . import channel, distributions, predict, races, sources, trees  # noqa: E402  (light modules)

__all__ = ["channel", "distributions", "predict", "races", "sources", "trees", "__version__"]
