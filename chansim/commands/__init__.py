"""Sub-commands of the ``chansim`` CLI, one module each (see :mod:`chansim.cli`)."""
