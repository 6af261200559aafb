"""From run records to tables, figures and docs: the records gathered per grid (``summaries``), the
paired statistics (``statistics``), the published numbers beside ours (``paper``,
``paper_numbers.yaml``), the tables and figures (``tables``, ``figures``, ``robustness_report``) and
the option tables of ``docs/`` rendered from the config dataclasses (``options``)."""
