"""What a grid is and how it executes: the config dataclasses and their strict loading (``config``,
``strict``), the grid runner and its executors (``runner``, ``parallel``, ``distributed``), the run
records (``records``), the exit codes (``errors``), the portable CPU numerics (``numerics``) and the
bit-for-bit check against the committed results (``verify``). Nothing is imported here:
``benchmarks.run.numerics`` must be importable before torch."""
