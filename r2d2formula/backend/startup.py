"""PyTensor's fixed costs in every process, made smaller.

Two costs that PyTensor pays in every process, whatever the model, measured on sleepstudy's
numpyro fit (``benchmarks/jax_stages.py``):

* **BLAS link flags.** The first graph rewrite or C compilation reads
  ``pytensor.config.blas__ldflags``, which PyTensor finds by calling the C++ compiler
  (0.4 s) unless the user set it (``PYTENSOR_FLAGS``, ``.pytensorrc``).
  :func:`look_up_blas_flags` starts that search in a thread when the backend is imported:
  it waits on the compiler, so it runs beside the imports and the model build. Should the
  main thread need the flags first, PyTensor looks them up there too, with the same result.
  :func:`blas_flags_known` waits for the thread, before the pymc sampler forks its chains
  (a fork must not copy a thread in the middle of a compiler call).
* **Creation tracebacks.** PyTensor stores a traceback with every variable it creates (for
  its error messages), and the rewrites that turn a model into a compiled function create
  thousands: 0.25 s of each JAX conversion. :func:`no_node_tracebacks` turns them off while a
  built model is compiled and sampled; the model's own variables, built before, keep theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytensor

__all__ = ["look_up_blas_flags", "blas_flags_known", "no_node_tracebacks"]

_lookup: threading.Thread | None = None


def look_up_blas_flags() -> None:
    """Start PyTensor's search for its BLAS link flags in a thread (once per process).

    Where the user set the flags, the thread only reads them.
    """
    global _lookup
    if _lookup is not None:
        return
    _lookup = threading.Thread(target=lambda: pytensor.config.blas__ldflags,
                               name="r2d2formula-blas-flags", daemon=True)
    _lookup.start()


def blas_flags_known() -> None:
    """Wait until the search started by :func:`look_up_blas_flags` is over."""
    if _lookup is not None:
        _lookup.join()


@contextmanager
def no_node_tracebacks() -> Iterator[None]:
    """No creation traceback on the graph variables made inside (PyTensor's
    ``traceback__limit = 0``), restored afterwards."""
    with pytensor.config.change_flags(traceback__limit=0):
        yield
