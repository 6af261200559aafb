"""One run: the training loop (``trainer``), where and how it computes (``compute``: device, mixed
precision, memory format; ``distributed``: the ranks under torchrun), the evaluation of a split and its
prediction logs (``evaluation``), and the test-time degradations of a finished run (``perturbations``,
``robustness``)."""
