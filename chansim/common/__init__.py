"""What every layer uses: confidence intervals (``stats``), output files that never clobber
(``outputs``), diagnostics on stderr (``logconfig``) and the one parallel map (``parallel``).
"""
