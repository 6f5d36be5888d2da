"""chansim: speculative decoding measured with information theory.

Public surface (see README for a map of the package)::

    from chansim import distributions, races, channel
"""
__version__ = "0.1.0"
