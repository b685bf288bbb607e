"""The PyMC backend: the only part of r2d2formula that imports PyMC."""

from r2d2formula.backend.graph import OBS_DIM, GraphInfo, build_model, graph_data
from r2d2formula.backend.sampling import (
    DEFAULT_SAMPLER,
    SAMPLERS,
    check_sampler,
    compile_nutpie,
    sample_model,
    sample_prior,
)
from r2d2formula.backend.startup import look_up_blas_flags

__all__ = ["build_model", "graph_data", "GraphInfo", "OBS_DIM", "sample_model", "sample_prior",
           "check_sampler", "compile_nutpie", "SAMPLERS", "DEFAULT_SAMPLER"]

look_up_blas_flags()  # PyTensor's 0.4 s compiler calls, beside the imports and the model build
