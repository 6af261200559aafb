"""The foundation every other part of ``benchmarks/`` and ``baselines/`` stands on; it imports nothing of
the project: strict YAML-to-dataclass loading and ``ConfigError`` (``strict``), the exit codes and the
errors they stand for (``errors``), run directories, atomic writes and provenance (``records``), the
portable CPU numerics (``numerics``) and the choice of a run's reported epoch (``selection``). Nothing
is imported here: ``benchmarks.core.numerics`` must be importable before torch."""
