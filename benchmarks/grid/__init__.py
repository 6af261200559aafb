"""What a grid and a run are: the config dataclasses, their strict loading and the expansion of a grid
into runs (``config``), and the names of what it produces (``naming``: run directories, method titles).
It checks every method's and dataset's parameters, so it stands above ``baselines/`` and ``data/``."""
