"""How a grid executes, at the top of the house: the grid runner (``runner``), its executors
(``parallel``: worker processes, submitit, SLURM) and the check of a re-trained sample against the
committed results (``verify``)."""
