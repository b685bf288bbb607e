"""PyTensor's per-process fixed costs (``r2d2formula.backend.startup``)."""

from __future__ import annotations

import pytensor
import pytensor.tensor as pt
import pytest
from _interpreter import run_python

from r2d2formula.backend import startup


def test_importing_the_backend_looks_up_the_blas_flags_in_a_thread():
    """The backend's import starts PyTensor's BLAS flag search in a thread; when it is over,
    PyTensor holds the flags without the main thread having asked for them."""
    code = (
        "import threading, pytensor\n"
        "import r2d2formula.backend\n"
        "from r2d2formula.backend import startup\n"
        "assert startup._lookup is not None and startup._lookup.name == 'r2d2formula-blas-flags'\n"
        "startup.blas_flags_known()\n"
        "assert not startup._lookup.is_alive()\n"
        "param = pytensor.config._config_var_dict['blas__ldflags']\n"
        "assert hasattr(param, 'val'), 'flags not looked up'\n"
        "thread = startup._lookup\n"
        "startup.look_up_blas_flags()\n"
        "assert startup._lookup is thread, 'a second search'\n"
    )
    run_python(code)


def test_no_node_tracebacks_inside_and_restored_after():
    """Variables made inside carry no creation traceback; PyTensor's limit comes back after,
    also after an error."""
    limit = pytensor.config.traceback__limit
    assert limit != 0
    x = pt.vector("x")
    with startup.no_node_tracebacks():
        inside = pt.exp(x)
    outside = pt.exp(x)
    assert inside.tag.trace == []
    assert outside.tag.trace != []
    with pytest.raises(ValueError, match="inside"):
        with startup.no_node_tracebacks():
            raise ValueError("inside")
    assert pytensor.config.traceback__limit == limit
