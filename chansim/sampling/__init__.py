"""Exponential races and what samples with them: keyed noise, race winners and the rank law's
sampling (``races``), exact race samplers at real V (``race_sampling``), the shared numerical
kernels (``kernels``), next-token sources (``sources``) and the multi-draft transport
problem (``transport``).
"""
