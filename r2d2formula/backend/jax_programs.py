"""JAX programs kept on disk, so that a refit in a new process skips building them.

A JAX fit (numpyro, blackjax) derives the model's log density (PyMC's ``Model.logp``), turns
it and the post-processing of the draws (deterministics, pointwise log-likelihood) into JAX
functions (PyTensor's rewrites and JAX conversion), and the sampler traces its whole warm-up and
sampling loop around the log density. JAX's persistent compilation cache
(:func:`~r2d2formula.backend.sampling.use_jax_compilation_cache`) saves the XLA compilation
that follows, but the rest was paid again in every process: about 3 s of a 12.8 s sleepstudy fit
with numpyro (``benchmarks/jax_stages.py``).

This module keeps the programs themselves on disk, as serialized :mod:`jax.export` modules:

* the value and gradient of the log density (:func:`exported_program`);
* the sampler's loop over all chains, where chains run in parallel over devices
  (:func:`run_chains`; ``jax.pmap`` as ``jax.shard_map``, the form JAX can export);
* the post-processing of all draws.

Their key (:func:`program_key`) is a fingerprint of the model's definition
(:func:`model_fingerprint`: every operation of its graph with its parameters, every constant
and data value, every type, each variable's value and transform), the program's role, the
shapes of its arguments, the sampler settings compiled into it (:func:`settings_token`) and
the versions of r2d2formula, PyMC, PyTensor, JAX and the sampler. PyMC writes the data into
JAX programs as constants, so a program is found again by a fit of the same model on the same
data with the same settings (a re-run notebook or script, a benchmark); it then draws exactly
what the fit that stored it drew. Any other fit builds its own and stores it. The files are in
``programs`` under the JAX cache folder; deleting them is always safe.

Nothing is stored, and the fit builds and converts everything as PyMC does,

* where the cache is off (``R2D2FORMULA_JAX_CACHE_DIR=off``) or ``flatbuffers`` (JAX's
  serialization) is not installed;
* for a model with an operation or transform whose parameters the fingerprint cannot read
  (no PyTensor ``__props__``, a function of unknown code), or with more than
  :data:`MAX_CONSTANT_BYTES` of constants and data (the programs would hold them all: on a
  million-row model the conversion is a small part of the fit);
* for chains vectorized with ``jax.vmap`` (``chain_method="vectorized"``): an exported program
  cannot be batched.

The sampler's loop is not stored with a progress bar on (its host callbacks cannot be
exported): such fits store and find the log density and the post-processing only.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.op import Op
from pytensor.graph.type import Type

try:  # PyTensor >= 2.36 moved it; the old location warns
    from pytensor.graph.traversal import io_toposort
except ImportError:  # pragma: no cover
    from pytensor.graph.basic import io_toposort

__all__ = ["graph_fingerprint", "model_fingerprint", "program_key", "exported_program", "run_chains",
           "settings_token", "program_folder", "MAX_CONSTANT_BYTES"]

#: Graphs with more constant and data bytes than this are not stored (see the module notes).
MAX_CONSTANT_BYTES = 64 * 2**20

#: Changes whenever what a stored program means changes (its arguments, its outputs).
_FORMAT = "r2d2formula-jax-program-1"
_SUFFIX = ".jaxexport"
#: attributes of scalar ops that cache work, not define the op
_SCALAR_OP_CACHES = frozenset({"prepare_node_called"})


class _NotFingerprinted(Exception):
    """A part of the graph whose parameters cannot be read reliably."""


def graph_fingerprint(inputs: Sequence[Variable], outputs: Sequence[Variable]) -> str | None:
    """A digest of the PyTensor graph from ``inputs`` to ``outputs``, or None.

    Equal digests mean the same computation: the same operations (class and every parameter in
    its ``__props__``, recursively), wired the same way, on inputs of the same types, with the
    same constants and shared-variable (data) values, bit for bit. Names, creation tracebacks
    and the order in which the variables were created do not count.

    Returns None for a graph this cannot vouch for: an operation without ``__props__`` or a
    parameter of an unknown kind, a free variable that is not among ``inputs``, a random
    generator, or constants and data over :data:`MAX_CONSTANT_BYTES`.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from r2d2formula.backend.jax_programs import graph_fingerprint
    >>> x = pt.vector("x")
    >>> a = graph_fingerprint([x], [pt.exp(x).sum()])
    >>> y = pt.vector("another_name")
    >>> a == graph_fingerprint([y], [pt.exp(y).sum()])
    True
    >>> a == graph_fingerprint([y], [pt.exp(2 * y).sum()])
    False
    """
    digest = _Digest()
    try:
        digest.walk(inputs, outputs)
    except _NotFingerprinted:
        return None
    return digest.hexdigest()


def model_fingerprint(model: Any) -> str | None:
    """A digest of a PyMC model's definition, or None: what its log density, deterministics
    and pointwise log-likelihood are computed from, read without building them.

    The graph from the model's value variables to its random variables, potentials,
    deterministics and observed values (as :func:`graph_fingerprint`; the random generators by
    type only, since no density depends on their state), and for every random variable, the
    value it is paired with and its transform (class and attributes, a bounds function by its
    code and the values it closes over), and ``check_bounds``. PyMC derives the log density
    from these alone (``Model.logp``: 0.1 to 0.6 s on the suite's models, saved by a fit that
    finds its programs).
    """
    rvs = list(model.basic_RVs)
    observed_values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    digest = _Digest(random_generators_by_type=True)
    try:
        digest.walk(model.value_vars, [*rvs, *observed_values, *model.potentials,
                                       *model.deterministics])
        for rv in rvs:
            transform = model.rvs_to_transforms.get(rv)
            digest.update("rv", str(digest.position(rv)),
                          str(digest.position(model.rvs_to_values[rv])),
                          "none" if transform is None else _object_token(transform))
        digest.update("check_bounds", repr(bool(model.check_bounds)))
    except _NotFingerprinted:
        return None
    return digest.hexdigest()


class _Digest:
    """The running digest of one graph (see :func:`graph_fingerprint`)."""

    def __init__(self, *, random_generators_by_type: bool = False) -> None:
        self._digest = hashlib.sha256(_FORMAT.encode())
        self._index: dict[Variable, int] = {}
        self._constant_bytes = 0
        self._generators_by_type = random_generators_by_type

    def update(self, *parts: str) -> None:
        self._digest.update("\x1f".join(parts).encode())
        self._digest.update(b"\x1e")

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def walk(self, inputs: Sequence[Variable], outputs: Sequence[Variable]) -> None:
        for variable in inputs:
            self.update("input", _type_token(variable.type))
            self._index[variable] = len(self._index)
        for node in io_toposort(list(inputs), list(outputs)):
            wiring = [str(self.position(v)) for v in node.inputs]
            self.update("apply", _op_token(node.op), *wiring, "->",
                        *(_type_token(v.type) for v in node.outputs))
            for variable in node.outputs:
                self._index[variable] = len(self._index)
        self.update("outputs", *(str(self.position(v)) for v in outputs))

    def position(self, variable: Variable) -> int:
        """The variable's number in the walk; a constant or shared variable met for the first
        time is numbered and its value digested."""
        if variable in self._index:
            return self._index[variable]
        if isinstance(variable, Constant):
            data = variable.data
        elif isinstance(variable, SharedVariable):
            data = variable.get_value(borrow=True)
        else:
            raise _NotFingerprinted(f"free variable {variable} is not an input")
        if isinstance(data, np.ndarray | np.generic | int | float | bool):
            array = np.asarray(data)
            self._constant_bytes += array.nbytes
            if self._constant_bytes > MAX_CONSTANT_BYTES:
                raise _NotFingerprinted("too much constant data")
            token = _array_token(array)
        elif self._generators_by_type and isinstance(data, np.random.Generator):
            token = "generator"
        else:  # None, a slice (indexing constants); a generator raises
            token = _value_token(data)
        self.update("constant", _type_token(variable.type), token)
        self._index[variable] = len(self._index)
        return self._index[variable]


def _array_token(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return f"{data.dtype.str}{data.shape}:{hashlib.sha256(data.view(np.uint8)).hexdigest()}"


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _op_token(op: Op) -> str:
    if getattr(type(op), "__props__", None) is not None:
        return _props_token(op)
    from pytensor.compile.builders import OpFromGraph
    from pytensor.scalar.basic import ScalarInnerGraphOp, ScalarOp

    if isinstance(op, OpFromGraph):
        # PyMC's symbolic random variables (LKJ, ...): their inner graph, and the attributes
        # that are plain values (signature, support dimensions); a gradient override is code
        if any(getattr(op, name, None) is not None
               for name in ("lop_overrides", "grad_overrides", "rop_overrides")):
            raise _NotFingerprinted(f"{type(op).__name__} overrides its gradient")
        inner = _Digest(random_generators_by_type=True)
        inner.walk(op.inner_inputs, op.inner_outputs)
        plain = {k: v for k, v in vars(op).items() if _is_plain(v)}
        return f"{_qualified(type(op))}({inner.hexdigest()};{_value_token(plain)})"
    if isinstance(op, ScalarOp) and not isinstance(op, ScalarInnerGraphOp):
        # PyTensor's scalar ops have no __props__: their identity is their class and
        # attributes (output type rule, name, a Cast's target type), all spelled out here
        attributes = {k: v for k, v in vars(op).items() if k not in _SCALAR_OP_CACHES}
        return f"{_qualified(type(op))}{_value_token(attributes)}"
    raise _NotFingerprinted(f"{type(op).__name__} has no __props__")


def _type_token(type_: Type) -> str:
    from pytensor.tensor.random.type import RandomGeneratorType
    from pytensor.tensor.type_other import NoneTypeT, SliceType

    # parameterless types: ``NoneConst``'s, random generators', slices'
    if type(type_) in (NoneTypeT, RandomGeneratorType, SliceType):
        return _qualified(type(type_))
    return _props_token(type_)


def _props_token(obj: Any) -> str:
    props = getattr(type(obj), "__props__", None)
    if props is None:
        raise _NotFingerprinted(f"{type(obj).__name__} has no __props__")
    values = ",".join(f"{name}={_value_token(getattr(obj, name))}" for name in props)
    return f"{_qualified(type(obj))}({values})"


def _value_token(value: Any) -> str:
    """One parameter of an operation or type, spelled out completely."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, np.generic):
        return f"{value.dtype.str}:{value.item()!r}"
    if isinstance(value, np.ndarray):
        return _array_token(value)
    if isinstance(value, np.dtype):
        return f"dtype:{value.str}"
    if isinstance(value, tuple | list):
        return f"{type(value).__name__}[{';'.join(_value_token(v) for v in value)}]"
    if isinstance(value, frozenset | set):
        return f"set[{';'.join(sorted(_value_token(v) for v in value))}]"
    if isinstance(value, Mapping):  # dict, PyTensor's frozendict (inplace patterns)
        items = sorted(f"{_value_token(k)}:{_value_token(v)}" for k, v in value.items())
        return f"dict[{';'.join(items)}]"
    if isinstance(value, slice):
        return f"slice[{_value_token(value.start)};{_value_token(value.stop)};" \
               f"{_value_token(value.step)}]"
    if isinstance(value, type):
        return f"class:{_qualified(value)}"
    if isinstance(value, types.FunctionType):
        if value.__closure__ is None and "<" not in value.__qualname__:
            return f"function:{_qualified(value)}"  # a module-level function
        return _function_token(value)
    if isinstance(value, types.BuiltinFunctionType | np.ufunc):
        return f"builtin:{getattr(value, '__module__', '')}.{value.__name__}"
    if isinstance(value, Variable):
        raise _NotFingerprinted("a graph variable as a parameter")
    if isinstance(value, Op):
        return _op_token(value)  # Elemwise's scalar op
    return _props_token(value)  # a Type, an output type rule


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    return isinstance(value, tuple | list) and all(_is_plain(v) for v in value)


def _function_token(function: types.FunctionType) -> str:
    """A nested function (a transform's bounds function): its code and what it closes over,
    each spelled out, or refused."""
    code = function.__code__
    consts = [c for c in code.co_consts if not isinstance(c, types.CodeType)]
    if len(consts) != len(code.co_consts) or function.__kwdefaults__:
        raise _NotFingerprinted(f"function {function.__qualname__} with inner code")
    cells = [cell.cell_contents for cell in function.__closure__ or ()]
    body = hashlib.sha256(code.co_code).hexdigest()
    return (f"function:{_qualified(function)}:{body}:{_value_token(consts)}:"
            f"{_value_token(list(code.co_names))}:{_value_token(cells)}:"
            f"{_value_token(function.__defaults__)}")


def _object_token(obj: Any) -> str:
    """An object that is neither an op nor a type (a PyMC transform): its class and every
    attribute."""
    if getattr(type(obj), "__props__", None) is not None:
        return _props_token(obj)
    return f"{_qualified(type(obj))}{_value_token(dict(vars(obj)))}"


@functools.cache
def _versions(sampler: str) -> str:
    names = ["r2d2formula", "pymc", "pytensor", "jax", "jaxlib", sampler]
    found = []
    for name in names:
        try:
            found.append(f"{name}={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}=?")
    return ";".join(found) + f";python={sys.version_info[:3]}"


def program_key(role: str, fingerprint: str | None, arg_specs: Sequence[Any], *,
                sampler: str, settings: str = "") -> str | None:
    """The file name under which one program is stored, or None for a graph that is not.

    ``role`` names what the program computes from the graph (``"potential"``, ``"logp"``,
    ``"postprocess"``, ``"numpyro-chains"``, ``"blackjax-chains"``), ``arg_specs`` are its
    arguments' shapes and dtypes, ``settings`` the sampler settings compiled into it
    (:func:`settings_token`).
    """
    if fingerprint is None:
        return None
    import jax

    specs = ";".join(f"{np.dtype(s.dtype).str}{tuple(np.shape(s))}" for s in arg_specs)
    text = "|".join([_FORMAT, role, fingerprint, specs, settings, _versions(sampler),
                     f"x64={jax.config.jax_enable_x64}", jax.default_backend()])
    return f"{role}-{hashlib.sha256(text.encode()).hexdigest()[:40]}"


def program_folder() -> Path | None:
    """Where programs are stored: ``programs`` in r2d2formula's JAX cache folder
    (:func:`~r2d2formula.backend.sampling.jax_cache_dir`), or None where that cache is off or
    JAX cannot serialize programs (``flatbuffers`` is missing)."""
    from r2d2formula.backend.sampling import jax_cache_dir

    folder = jax_cache_dir()
    if folder is None or importlib.util.find_spec("flatbuffers") is None:
        return None
    return folder / "programs"


def exported_program(key: str, build: Callable[[], Callable], arg_specs: Sequence[Any],
                     folder: Path) -> Callable:
    """The program of ``key`` from ``folder``; else ``build()``, exported and stored there.

    ``build`` returns the JAX function (of positional arrays shaped as ``arg_specs``); it is
    called only when the program is not found. The result is the exported program's ``call``
    in both cases, so a fit draws the same numbers whether its programs were found or made.
    """
    import jax

    return _exported(folder / f"{key}{_SUFFIX}", lambda: jax.jit(build()), arg_specs).call


def run_chains(key: str, one_chain: Callable, arrays: Sequence[Any], folder: Path) -> Any:
    """``one_chain(*(a[c] for a in arrays))`` for every chain ``c``, each on its own device,
    stacked over chains; as one program stored under ``key`` in ``folder``.

    This is ``jax.pmap(one_chain)(*arrays)`` (the chains of PyMC's ``chain_method="parallel"``)
    written as ``jax.shard_map`` over a mesh of the first ``chains`` devices, the form
    :mod:`jax.export` can store. A fit that finds the program skips tracing the sampler's
    whole NUTS loop (numpyro's warm-up and sampling: 1 to 1.5 s on a CPU), and draws what the
    fit that stored it drew.
    """
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    chains = np.shape(arrays[0])[0]
    mesh = Mesh(np.array(jax.devices()[:chains]), ("chain",))
    by_chain = NamedSharding(mesh, PartitionSpec("chain"))

    def build() -> Callable:
        def on_one_device(*parts: Any) -> Any:  # each part holds one chain
            out = one_chain(*(part[0] for part in parts))
            return jax.tree.map(lambda leaf: leaf[None], out)

        # the stored log density's gradient comes from an exported call, which shard_map's
        # check of per-device values cannot see through
        mapped = jax.shard_map(on_one_device, mesh=mesh, in_specs=PartitionSpec("chain"),
                               out_specs=PartitionSpec("chain"), check_vma=False)
        return jax.jit(mapped, in_shardings=by_chain, out_shardings=by_chain)

    specs = [jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=by_chain) for a in arrays]
    exported = _exported(folder / f"{key}{_SUFFIX}", build, specs)
    call = jax.jit(exported.call, in_shardings=exported.in_shardings_jax(mesh),
                   out_shardings=jax.tree.unflatten(exported.out_tree,
                                                    exported.out_shardings_jax(mesh)))
    return call(*arrays)


def settings_token(**settings: Any) -> str | None:
    """The sampler settings that shape a stored program, spelled out; None where one of them
    cannot be (an object of unknown kind)."""
    try:
        return _value_token(settings)
    except _NotFingerprinted:
        return None


def _exported(path: Path, build: Callable[[], Callable], arg_specs: Sequence[Any]) -> Any:
    """The :class:`jax.export.Exported` stored at ``path``, else made by exporting ``build()``
    (a ``jax.jit`` function) and stored there."""
    import jax

    if path.is_file():
        try:
            return jax.export.deserialize(bytearray(path.read_bytes()))
        except Exception:  # noqa: BLE001 - a damaged file (any parse error): made again
            pass
    exported = jax.export.export(build())(*arg_specs)
    _store(path, exported.serialize())
    return exported


def _store(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a parallel fit reads a whole file or none); a
    read-only or full disk leaves the fit without storing."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp",
                                         delete=False) as handle:
            temporary = Path(handle.name)
            handle.write(data)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
