"""Save a fit to one netCDF file and load it back, without the original data frame.

The file is an ArviZ netCDF file (:meth:`arviz.InferenceData.to_netcdf`, engine h5netcdf)
with one extra group, ``training_data``: the columns of the training data that the formula
uses, every row as given (before ``dropna``), with their dtypes. The group's attribute
``r2d2formula`` holds the model as JSON: formula, family, link, the requested variant, the
R2D2 prior and the ``priors`` overrides, ``dropna``, the sampler and the package version.
:func:`load` rebuilds ``Model(formula, data, ...)`` from these, so the design is the same as
at fit time (level order, ``scale()``/``center()`` state, dropped rows), and returns
``Fit(model=..., idata=..., sampler=...)``: it prints its summary and predicts on new data.

Column dtypes kept: numbers (with NaN), nullable integers and booleans (``Int64``,
``boolean``), ``bool``, text (``str`` and ``object`` holding strings, with missing values)
and pandas ``Categorical`` with its categories, their order and ``ordered``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from r2d2formula.errors import DesignError, LoadError, R2D2FormulaWarning

if TYPE_CHECKING:
    from r2d2formula.results import Fit

__all__ = ["save_fit", "load", "FORMAT", "FORMAT_VERSION"]

#: Marks files written by :func:`save_fit`.
FORMAT = "r2d2formula-fit"
#: Bumped when the layout changes; :func:`load` reads this version and older ones.
FORMAT_VERSION = 1

_GROUP = "training_data"
_META = "r2d2formula"
_ROW = "row"


# ----------------------------------------------------------------------------- columns


def _encode_column(key: str, series: pd.Series) -> tuple[dict[str, xr.DataArray], dict]:
    """Variables and a JSON description for one column."""
    dtype = series.dtype
    info: dict[str, Any] = {"dtype": str(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        if not (pd.api.types.is_string_dtype(cats.dtype) or pd.api.types.is_object_dtype(
                cats.dtype) or pd.api.types.is_numeric_dtype(cats.dtype)):
            raise DesignError(
                f"cannot save column {series.name!r}: its categories have dtype {cats.dtype}; "
                "use text or numbers as categories"
            )
        info.update(kind="categorical", ordered=bool(dtype.ordered),
                    categories=[_json_scalar(c) for c in cats])
        codes = series.cat.codes.to_numpy(dtype=np.int64)  # -1 marks a missing value
        return {key: xr.DataArray(codes, dims=_ROW)}, info
    if pd.api.types.is_bool_dtype(dtype) and not pd.api.types.is_extension_array_dtype(dtype):
        info["kind"] = "bool"
        return {key: xr.DataArray(series.to_numpy(dtype=np.int8), dims=_ROW)}, info
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        # numpy numbers as they are; nullable Int64 / Float64 / boolean as float with NaN
        values = series.to_numpy()
        if pd.api.types.is_extension_array_dtype(dtype) or values.dtype == object:
            values = series.to_numpy(dtype=float, na_value=np.nan)
        info["kind"] = "number"
        return {key: xr.DataArray(values, dims=_ROW)}, info
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        missing = series.isna().to_numpy()
        values = series.astype(object).where(~missing, "").to_numpy()
        if not all(isinstance(v, str) for v in values):
            raise DesignError(
                f"cannot save column {series.name!r}: it mixes text with other values; "
                "make it one type before fitting"
            )
        info["kind"] = "text"
        return {key: xr.DataArray(values.astype(str), dims=_ROW),
                f"{key}__missing": xr.DataArray(missing.astype(np.int8), dims=_ROW)}, info
    raise DesignError(f"cannot save column {series.name!r} of dtype {dtype}")


def _decode_column(key: str, ds: xr.Dataset, info: dict) -> pd.Series | pd.Categorical:
    kind = info["kind"]
    values = ds[key].values
    if kind == "categorical":
        dtype = pd.CategoricalDtype(info["categories"], ordered=info["ordered"])
        return pd.Categorical.from_codes(values.astype(np.int64), dtype=dtype)
    if kind == "bool":
        return pd.Series(values.astype(bool))
    if kind == "number":
        series = pd.Series(values)
        return series.astype(info["dtype"]) if series.dtype.name != info["dtype"] else series
    if kind == "text":
        missing = ds[f"{key}__missing"].values.astype(bool)
        text = pd.Series(values.astype(str), dtype=object).where(~missing, None)
        dtype = info["dtype"]
        return text if dtype == "object" else text.astype(dtype)
    raise LoadError(f"unknown column kind {kind!r} in the saved training data")


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _encode_index(index: pd.Index) -> tuple[xr.DataArray, dict]:
    if pd.api.types.is_integer_dtype(index.dtype) or pd.api.types.is_float_dtype(index.dtype):
        return xr.DataArray(index.to_numpy(), dims=_ROW), {"kind": "number",
                                                           "name": _json_scalar(index.name)}
    values = [str(v) for v in index]
    if not all(isinstance(v, str) for v in index):
        warnings.warn(
            f"the data's index (dtype {index.dtype}) is saved as text; the loaded fit's row "
            "labels are its text form", R2D2FormulaWarning, stacklevel=4,
        )
    return (xr.DataArray(np.array(values, dtype=str), dims=_ROW),
            {"kind": "text", "name": _json_scalar(index.name), "dtype": str(index.dtype)})


def _decode_index(values: np.ndarray, info: dict) -> pd.Index:
    if info["kind"] == "text":
        values = values.astype(str)
        dtype = info.get("dtype", "object")
        return pd.Index(values, dtype=dtype if dtype in ("object", "str") else object,
                        name=info["name"])
    return pd.Index(values, name=info["name"])


def _training_dataset(data: pd.DataFrame, meta: dict) -> xr.Dataset:
    variables: dict[str, xr.DataArray] = {}
    columns = []
    for k, name in enumerate(data.columns):
        # netCDF names are restricted (no '/'); the real column names live in the JSON
        key = f"column_{k}"
        arrays, info = _encode_column(key, data[name])
        variables.update(arrays)
        columns.append({"name": name, "variable": key, **info})
    index, index_info = _encode_index(data.index)
    variables["row_index"] = index
    meta = {**meta, "columns": columns, "index": index_info, "n_rows": len(data)}
    return xr.Dataset(variables, attrs={_META: json.dumps(meta)})


# ----------------------------------------------------------------------------- save / load


def save_fit(fit: Fit, path: str | os.PathLike) -> Path:
    """Write ``fit`` to one netCDF file that :func:`load` reads back.

    Parameters
    ----------
    fit : Fit
        A fitted model.
    path : str or path-like
        The file to write (overwritten if it exists); ``.nc`` is the usual extension.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DesignError
        A training column of a type that cannot be stored (never one a formula can use).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from r2d2formula import Model, datasets, load
    >>> fit = Model("Reaction ~ Days", datasets.load("sleepstudy")).fit(
    ...     draws=100, tune=100, chains=2, random_seed=1, progressbar=False,
    ...     sampler="pymc")  # doctest: +SKIP
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.nc"
    >>> fit.save(path)  # doctest: +SKIP
    >>> load(path).summary().loc["b[Days]", "mean"] > 0  # doctest: +SKIP
    True
    """
    from r2d2formula import __version__
    from r2d2formula.design import training_data

    model = fit.model
    options = getattr(model, "options", {}) or {}
    prior = options.get("prior")
    priors = options.get("priors") or {}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "formula": model.formula,
        "family": model.family.name,
        "link": model.family.link,
        "variant": options.get("variant", "auto"),
        "chosen_variant": model.variant,
        "prior": None if prior is None else prior.to_dict(),
        "priors": {key: value.to_dict() for key, value in priors.items()},
        "dropna": bool(options.get("dropna", False)),
        "sampler": fit.sampler,
        "prior_table": [list(row) for row in model.priors.table()],
    }
    dataset = _training_dataset(training_data(model.design), meta)
    # a shallow copy: the groups are shared, only the extra group is added to the copy
    groups = {g: fit.idata[g] for g in fit.idata.groups() if g != _GROUP}
    idata = az.InferenceData(attrs=dict(getattr(fit.idata, "attrs", {}) or {}), **groups)
    with warnings.catch_warnings():
        # "training_data" is not one of ArviZ's standard groups, which ArviZ mentions
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups({_GROUP: dataset})
    path = Path(path)
    idata.to_netcdf(str(path), engine="h5netcdf")
    return path


def load(path: str | os.PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save` (:func:`save_fit`).

    The model is rebuilt from the saved formula, family, priors and training columns, so the
    design (level order, ``scale()``/``center()`` state) is the one of the original fit.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Fit
        With the saved ``idata`` (without the ``training_data`` group), the rebuilt model and
        the sampler's name.

    Raises
    ------
    LoadError
        The file does not exist, is not netCDF, or was not written by r2d2formula (for
        example a plain ArviZ file), or was written by a newer format version.
    """
    from r2d2formula.model import Model
    from r2d2formula.priors.spec import R2D2, Prior
    from r2d2formula.results import Fit

    path = Path(path)
    if not path.is_file():
        raise LoadError(f"no file {str(path)!r}; check the path")
    try:
        with az.rc_context({"data.load": "eager"}), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            idata = az.from_netcdf(str(path), engine="h5netcdf")
    except (OSError, ValueError) as exc:
        raise LoadError(
            f"cannot read {str(path)!r} as a netCDF file ({type(exc).__name__}: {exc}); load "
            "reads files written by fit.save(path)"
        ) from exc
    if _GROUP not in idata.groups() or _META not in idata[_GROUP].attrs:
        raise LoadError(
            f"{str(path)!r} is a netCDF file but not a fit saved by r2d2formula (it has no "
            f"{_GROUP!r} group with the model); read a plain ArviZ file with "
            "arviz.from_netcdf, or save fits with fit.save(path)"
        )
    dataset = idata[_GROUP]
    try:
        meta = json.loads(dataset.attrs[_META])
    except (TypeError, ValueError) as exc:
        raise LoadError(f"the model description in {str(path)!r} is damaged: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("format_version", 0) > FORMAT_VERSION:
        raise LoadError(
            f"{str(path)!r} has format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}; this r2d2formula reads {FORMAT!r} up to version "
            f"{FORMAT_VERSION}; upgrade r2d2formula"
        )
    data = pd.DataFrame(
        {col["name"]: _decode_column(col["variable"], dataset, col) for col in meta["columns"]},
        columns=[col["name"] for col in meta["columns"]],
    )
    data.index = _decode_index(dataset["row_index"].values, meta["index"])
    del idata[_GROUP]
    prior = None if meta["prior"] is None else R2D2.from_dict(meta["prior"])
    priors = {key: Prior.from_dict(value) for key, value in meta["priors"].items()} or None
    with warnings.catch_warnings():
        # the dropna and p > n warnings were given when the model was first built
        warnings.simplefilter("ignore", R2D2FormulaWarning)
        model = Model(meta["formula"], data, family=meta["family"], link=meta["link"],
                      prior=prior, priors=priors, variant=meta["variant"],
                      dropna=meta["dropna"])
    if model.variant != meta["chosen_variant"]:
        warnings.warn(
            f"the fit was made with variant {meta['chosen_variant']!r} (r2d2formula "
            f"{meta['package_version']}) but this version chooses {model.variant!r} for the "
            "same model; the posterior draws are those of the saved fit",
            R2D2FormulaWarning, stacklevel=2,
        )
    _add_log_variances(idata)
    return Fit(model=model, idata=idata, sampler=meta["sampler"])


def _add_log_variances(idata: az.InferenceData) -> None:
    """Fits saved by earlier versions sampled (R2, phi) directly and have no ``log_V``, the
    sampling coordinate that prediction reads now: it is ``log(phi W)``, from their draws."""
    posterior = idata.get("posterior")
    if posterior is None or "log_V" in posterior or not {"phi", "W"} <= set(posterior):
        return
    posterior["log_V"] = np.log(posterior["phi"]) + np.log(posterior["W"])
