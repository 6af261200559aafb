"""One run: the training loop (``trainer``), where and how it computes (``compute``: device, mixed
precision, memory format), the evaluation of a split and its prediction logs (``evaluation``), the
choice of the reported epoch (``selection``), and the test-time degradations of a finished run
(``perturbations``, ``robustness``)."""
