"""Shared test settings.

Under pytest-xdist (`-n 2`, as scripts/test.sh runs the suite) each worker process keeps torch to
one intra-op thread: two workers on a 2-core machine, each with two OpenMP threads, would
oversubscribe the cores and make every convolution slower than running the tests one by one.
"""
import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
