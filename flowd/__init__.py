"""flowd: Junos-style active flow monitoring for Linux."""

import os

__version__ = "0.1.0"

# flowd does no linear algebra: keep numpy's BLAS from starting a thread pool in every process at
# import (about 50 ms of CPU per process on a 2-core machine, and idle threads in every capture worker).
# Set here, before any module imports numpy; a value in the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
del _var
