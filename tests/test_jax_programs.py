"""JAX programs kept on disk (``r2d2formula.backend.jax_programs``).

The graph fingerprint needs only PyTensor; storing and loading programs needs jax (and
flatbuffers, its serialization), and those tests are skipped without them.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from _interpreter import run_python
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from r2d2formula.backend import jax_programs
from r2d2formula.backend.jax_programs import graph_fingerprint

HAS_JAX = all(importlib.util.find_spec(name) is not None
              for name in ("jax", "numpyro", "blackjax", "flatbuffers"))
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax, numpyro, blackjax or flatbuffers missing")


def _regression(data: np.ndarray, *, name: str = "beta", scale: float = 2.0):
    """A small log density with a data container and a constant: ``(inputs, outputs)``."""
    beta = pt.vector(name)
    x = pytensor.shared(data, name="x")
    mu = pt.dot(x, beta)
    return [beta], [-0.5 * pt.sum((mu / scale) ** 2) + pt.log(pt.sum(pt.exp(beta)))]


def test_fingerprint_ignores_names_and_creation_order():
    data = np.arange(12.0).reshape(4, 3)
    first = graph_fingerprint(*_regression(data))
    _ = pt.scalar("something_built_in_between") + 1
    again = graph_fingerprint(*_regression(data.copy(), name="another_name"))
    assert first is not None and first == again


@pytest.mark.parametrize("change", ["data value", "data shape", "constant", "operation",
                                    "input dtype", "axis"])
def test_fingerprint_tells_different_computations_apart(change):
    data = np.arange(12.0).reshape(4, 3)
    reference = graph_fingerprint(*_regression(data))
    if change == "data value":
        other = data.copy()
        other[2, 1] += 1e-12  # one value in the last bits
        changed = graph_fingerprint(*_regression(other))
    elif change == "data shape":
        changed = graph_fingerprint(*_regression(np.arange(12.0).reshape(6, 2)))
    elif change == "constant":
        changed = graph_fingerprint(*_regression(data, scale=2.0000001))
    elif change == "operation":
        beta = pt.vector("beta")
        mu = pt.dot(pytensor.shared(data), beta)
        changed = graph_fingerprint([beta], [-0.5 * pt.sum((mu / 2.0) ** 2)
                                             + pt.log(pt.sum(pt.exp2(beta)))])
    elif change == "input dtype":
        beta = pt.vector("beta", dtype="float32")
        mu = pt.dot(pytensor.shared(data), beta)
        changed = graph_fingerprint([beta], [-0.5 * pt.sum((mu / 2.0) ** 2)
                                             + pt.log(pt.sum(pt.exp(beta)))])
    else:
        x = pt.matrix("x")
        changed = graph_fingerprint([x], [x.sum(axis=1)])
        reference = graph_fingerprint([x], [x.sum(axis=0)])
    assert changed is not None and changed != reference


class _NoProps(Op):
    """An op PyTensor cannot compare by parameters (no ``__props__``)."""

    def __init__(self, factor):
        self.factor = factor

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = inputs[0] * self.factor


def test_fingerprint_refuses_what_it_cannot_read(monkeypatch):
    x = pt.vector("x")
    assert graph_fingerprint([x], [_NoProps(2.0)(x).sum()]) is None
    free = pt.vector("not_an_input")
    assert graph_fingerprint([x], [(x * free).sum()]) is None
    monkeypatch.setattr(jax_programs, "MAX_CONSTANT_BYTES", 200)
    assert graph_fingerprint(*_regression(np.ones((10, 3)))) is None  # 240 bytes of data
    assert graph_fingerprint(*_regression(np.ones((2, 3)))) is not None


def test_fingerprint_is_the_same_in_another_process():
    """Python's own ``hash`` of strings changes from process to process; the fingerprint
    must not."""
    code = ("import numpy as np, pytensor, pytensor.tensor as pt\n"
            "from r2d2formula.backend.jax_programs import graph_fingerprint\n"
            "beta = pt.vector('b'); x = pytensor.shared(np.arange(12.0).reshape(4, 3))\n"
            "print(graph_fingerprint([beta], [pt.switch(pt.lt(beta, 0), beta, 2 * beta)"
            ".sum() + pt.dot(x, beta).sum()]))\n")
    beta = pt.vector("b")
    x = pytensor.shared(np.arange(12.0).reshape(4, 3))
    here = graph_fingerprint([beta], [pt.switch(pt.lt(beta, 0), beta, 2 * beta).sum()
                                      + pt.dot(x, beta).sum()])
    there = run_python(code).split()[-1]
    assert here == there


@needs_jax
def test_exported_program_is_stored_then_found(tmp_path):
    import jax
    import pymc.sampling.jax  # noqa: F401  (64-bit floats in JAX, as in a fit)

    specs = [jax.ShapeDtypeStruct((3,), np.float64)]
    built = []

    def build():
        built.append(1)
        return lambda v: (jax.numpy.sin(v).sum(), v * 2.0)

    first = jax_programs.exported_program("logp-test", build, specs, tmp_path)
    stored = list(tmp_path.iterdir())
    assert [p.name for p in stored] == ["logp-test.jaxexport"]
    second = jax_programs.exported_program("logp-test", build, specs, tmp_path)
    assert built == [1]  # found: not built again
    value = np.array([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(first(value)[0], second(value)[0])
    np.testing.assert_allclose(second(value)[0], np.sin(value).sum(), rtol=1e-15)

    stored[0].write_bytes(b"not a program")  # damaged: made again and replaced
    third = jax_programs.exported_program("logp-test", build, specs, tmp_path)
    assert built == [1, 1]
    np.testing.assert_array_equal(third(value)[1], value * 2.0)
    assert jax_programs.exported_program("logp-test", build, specs, tmp_path) is not None
    assert built == [1, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["logp-test.jaxexport"]  # no temp files


@needs_jax
def test_program_key_covers_shapes_and_role():
    import jax

    fingerprint = "f" * 64
    a = jax_programs.program_key("logp", fingerprint, [jax.ShapeDtypeStruct((3,), np.float64)],
                                 sampler="numpyro")
    assert a == jax_programs.program_key("logp", fingerprint,
                                         [jax.ShapeDtypeStruct((3,), np.float64)],
                                         sampler="numpyro")
    assert a != jax_programs.program_key("logp", fingerprint,
                                         [jax.ShapeDtypeStruct((4,), np.float64)],
                                         sampler="numpyro")
    assert a != jax_programs.program_key("potential", fingerprint,
                                         [jax.ShapeDtypeStruct((3,), np.float64)],
                                         sampler="numpyro")
    assert jax_programs.program_key("logp", None, [], sampler="numpyro") is None


def test_model_fingerprint_follows_the_model_definition(small_gaussian):
    """Equal for the same model built again; different for other data, another prior or
    another formula. PyMC derives the log density from what it reads."""
    from r2d2formula import R2D2, Model
    from r2d2formula.backend.jax_programs import model_fingerprint

    def fingerprint(formula="y ~ x1 + x2 + (1 | g)", data=small_gaussian, **kwargs):
        return model_fingerprint(Model(formula, data, **kwargs).build())

    reference = fingerprint()
    assert reference is not None and reference == fingerprint()
    changed = small_gaussian.copy()
    changed.loc[7, "y"] += 1e-9
    assert fingerprint(data=changed) != reference
    assert fingerprint(prior=R2D2(r2_mean=0.3, r2_precision=10)) != reference
    assert fingerprint("y ~ x1 + (1 | g)") != reference
    assert fingerprint("y ~ x1 + x2 + (1 | g) + (1 | h)") != reference


@needs_jax
def test_a_refit_finds_its_programs_and_draws_the_same(monkeypatch, tmp_path, small_gaussian):
    """The second fit of the same model on the same data neither builds the log density
    (``Model.logp``) nor converts anything (PyMC's ``get_jaxified_graph``), and draws exactly
    what the first drew."""
    import pymc as pm
    import pymc.sampling.jax as pymc_jax

    from r2d2formula import Model
    from r2d2formula.backend import sampling

    monkeypatch.setenv("R2D2FORMULA_JAX_CACHE_DIR", str(tmp_path))
    events = []
    original_graph, original_logp = pymc_jax.get_jaxified_graph, pm.Model.logp

    def converted(*args, **kwargs):
        events.append("converted")
        return original_graph(*args, **kwargs)

    def built(self, *args, **kwargs):
        events.append("logp")
        return original_logp(self, *args, **kwargs)

    monkeypatch.setattr(pymc_jax, "get_jaxified_graph", converted)
    monkeypatch.setattr(pm.Model, "logp", built)
    model = Model("y ~ x1 + x2 + (1 | g)", small_gaussian)
    settings = dict(sampler="numpyro", draws=30, tune=30, chains=2, progressbar=False,
                    random_seed=4, info=model.graph_info)
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            fits.append(sampling.sample_model(model.build(), **settings)[0])
            events.append("fit")
    # the log density and the post-processing, converted once
    assert events == ["logp", "converted", "converted", "fit", "fit"]
    import jax

    stored = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "programs").iterdir())
    # the chains, where they run in parallel over devices
    chains = ["numpyro-chains"] if jax.local_device_count() >= 2 else []
    assert stored == sorted(["postprocess", "potential", *chains])
    for name in ("R2", "phi", "b", "r_g", "sigma"):
        np.testing.assert_array_equal(fits[0].posterior[name], fits[1].posterior[name])
    np.testing.assert_array_equal(fits[0].log_likelihood["y"], fits[1].log_likelihood["y"])
    for name in ("diverging", "n_steps", "step_size"):
        np.testing.assert_array_equal(fits[0].sample_stats[name], fits[1].sample_stats[name])
    assert {"observed_data", "sample_stats"} <= set(fits[1].groups())


_CHAINS_FIT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import pymc as pm, pymc.sampling.jax as pymc_jax
from r2d2formula import Model
events = []
for owner, name in ((pymc_jax, "get_jaxified_graph"), (pm.Model, "logp")):
    original = getattr(owner, name)
    def counted(*a, _original=original, _name=name, **k):
        events.append(_name)
        return _original(*a, **k)
    setattr(owner, name, counted)
rng = np.random.default_rng(0)
frame = pd.DataFrame({"x": rng.normal(size=40), "g": np.repeat(list("abcd"), 10)})
frame["y"] = 1.0 + 0.5 * frame.x + rng.normal(size=40)
fit = Model("y ~ x + (1 | g)", frame).fit(sampler=sys.argv[1], draws=25, tune=25, chains=2,
                                          random_seed=5, progressbar=False)
print(json.dumps({"events": events, "R2": fit.idata.posterior["R2"].values.tolist(),
                  "steps": fit.idata.sample_stats["n_steps"].values.tolist()}))
"""


@needs_jax
@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_the_next_process_runs_the_stored_chains(tmp_path, sampler):
    """Chains in parallel over devices: the sampler's whole loop is one stored program, and
    the next process fitting the same model to the same data builds, converts and traces
    nothing, and draws what the first drew."""
    import json
    import os

    env = {**os.environ, "R2D2FORMULA_JAX_CACHE_DIR": str(tmp_path),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}

    def run() -> dict:
        return json.loads(run_python(_CHAINS_FIT, sampler, env=env).strip().splitlines()[-1])

    first = run()
    assert first["events"] == ["logp", "get_jaxified_graph", "get_jaxified_graph"]
    stored = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "programs").iterdir())
    role = "potential" if sampler == "numpyro" else "logp"
    assert stored == sorted([f"{sampler}-chains", role, "postprocess"])
    second = run()
    assert second["events"] == []
    assert second["R2"] == first["R2"]
    assert second["steps"] == first["steps"]


@needs_jax
def test_the_chains_are_stored_only_where_they_can_be(tmp_path, small_gaussian):
    """Chains in parallel with a device each, no progress bar (host callbacks cannot be
    exported), sampler settings that can be spelled out; else numpyro's and PyMC's own."""
    import jax

    from r2d2formula import Model
    from r2d2formula.backend import sampling

    graph = Model("y ~ x1", small_gaussian).build()
    density = sampling._StoredLogDensity(sampling._LogDensityTerms(graph), sampler="numpyro",
                                         fingerprint="f" * 64, folder=tmp_path)
    devices = jax.local_device_count()
    base = dict(sampler="numpyro", chains=min(devices, 2), chain_method="parallel",
                progressbar=False, folder=tmp_path, tune=10, draws=10, target_accept=0.9,
                nuts_kwargs={"dense_mass": True})

    def program(**changes):
        return sampling._chains_program(density, **{**base, **changes})

    if devices >= 2:
        assert isinstance(program(), sampling._ChainsProgram)
    assert program(progressbar=True) is None
    assert program(chain_method="sequential") is None
    assert program(chains=devices + 1) is None
    assert program(chains=1) is None
    assert program(folder=None) is None
    assert program(nuts_kwargs={"step_size": object()}) is None
    assert sampling._chains_program(jax.jit(lambda x: x), **base) is None


def test_fingerprint_reads_an_inner_graph_and_refuses_a_gradient_override():
    from pytensor.compile.builders import OpFromGraph

    x, inner = pt.vector("x"), pt.vector("inner")
    doubled = OpFromGraph([inner], [2 * inner])
    tripled = OpFromGraph([inner], [3 * inner])
    first = graph_fingerprint([x], [doubled(x).sum()])
    assert first is not None
    assert first == graph_fingerprint([x], [OpFromGraph([inner], [2 * inner])(x).sum()])
    assert first != graph_fingerprint([x], [tripled(x).sum()])
    overridden = OpFromGraph([inner], [2 * inner],
                             lop_overrides=lambda inputs, outputs, grads: [grads[0]])
    assert graph_fingerprint([x], [overridden(x).sum()]) is None
