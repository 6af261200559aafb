"""``make bench``: DAGR's and the methods' costs, the data path and the GPU epoch, measured as ratios
side by side in one process (interleaved, repeated, with the spread). Run ``python -m benchmarks.bench``."""
