"""fit.save(path) and r2d2formula.load(path): one netCDF file, the same fit back (issue 8).

One real (tiny) fit checks draws, design, priors, summary and predictions after a round trip;
the data-type cases use a stand-in posterior, since they are about the saved training data.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

import r2d2formula
from r2d2formula import R2D2, LoadError, Model, Prior, load
from r2d2formula.design import training_data
from r2d2formula.errors import DiagnosticsWarning, R2D2FormulaWarning
from r2d2formula.persistence import save_fit
from r2d2formula.results import Fit

UNICODE = "größe (cm)"


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 48
    data = pd.DataFrame({
        "x": rng.normal(size=n),
        UNICODE: rng.normal(170, 10, size=n),
        # an ordered categorical whose order is not alphabetical, with an unused category
        "dose": pd.Categorical(rng.choice(["low", "mid", "high"], n),
                               categories=["low", "mid", "high", "none"], ordered=True),
        # grouping factor: categorical order decides the level order
        "site": pd.Categorical(rng.choice(["Zürich", "Ängelholm", "Bern"], n),
                               categories=["Zürich", "Ängelholm", "Bern"]),
    })
    data["y"] = (1.0 + 0.8 * data["x"] + 0.05 * (data[UNICODE] - 170)
                 + data["dose"].cat.codes * 0.3 + rng.normal(size=n))
    data.loc[5, "x"] = np.nan  # dropped with dropna=True, and recorded
    data.index = [f"obs{i}" for i in range(n)]
    return data


FORMULA = f"y ~ scale(x) + `{UNICODE}` + dose + (1 | site)"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", R2D2FormulaWarning)  # dropna's count
        warnings.simplefilter("ignore", DiagnosticsWarning)  # few draws on purpose
        model = Model(FORMULA, _data(), dropna=True,
                      prior=R2D2(r2_mean=0.4, r2_precision=5, concentration={"scale(x)": 2.0}),
                      priors={"sigma": Prior("HalfNormal", sigma=3.0)})
        fit = model.fit(draws=60, tune=100, chains=2, sampler="pymc", random_seed=11,
                        progressbar=False)
    path = fit.save(tmp_path_factory.mktemp("fits") / "fit.nc")
    return fit, path


@pytest.fixture(scope="module")
def loaded(fitted):
    return load(fitted[1])


def test_save_writes_one_netcdf_file(fitted):
    fit, path = fitted
    assert path.is_file() and path.stat().st_size > 0
    groups = set(az.from_netcdf(str(path)).groups())
    assert {"posterior", "sample_stats", "training_data"} <= groups


def test_draws_round_trip_exactly(fitted, loaded):
    fit, _ = fitted
    assert loaded.sampler == fit.sampler == "pymc"
    assert set(loaded.idata.groups()) == set(fit.idata.groups())  # training_data removed
    for group in fit.idata.groups():
        original, back = fit.idata[group], loaded.idata[group]
        assert set(original.data_vars) == set(back.data_vars), group
        for name in original.data_vars:
            np.testing.assert_array_equal(back[name].values, original[name].values)
            assert back[name].dims == original[name].dims
            for dim in original[name].dims:
                assert list(back[dim].values) == list(original[dim].values), (group, dim)


def test_design_round_trips(fitted, loaded):
    a, b = fitted[0].design, loaded.design
    assert b.formula == a.formula == FORMULA
    assert b.common.labels == a.common.labels
    assert b.common.terms == a.common.terms
    np.testing.assert_array_equal(b.common.matrix, a.common.matrix)
    np.testing.assert_array_equal(b.common.means, a.common.means)
    np.testing.assert_array_equal(b.common.scales, a.common.scales)
    np.testing.assert_array_equal(b.response.values, a.response.values)
    assert b.n_dropped == a.n_dropped == 1
    assert b.row_index.equals(a.row_index) and "obs5" not in b.row_index
    assert list(b.factors) == list(a.factors)
    for name, factor in a.factors.items():
        assert b.factors[name].levels == factor.levels
        np.testing.assert_array_equal(b.factors[name].codes, factor.codes)
    for new, old in zip(b.group_terms, a.group_terms, strict=True):
        assert (new.factor, new.labels, new.correlated) == (old.factor, old.labels, old.correlated)
        np.testing.assert_array_equal(new.matrix, old.matrix)
    assert b.component_names == a.component_names


def test_priors_and_model_round_trip(fitted, loaded):
    original = fitted[0].model
    model = loaded.model
    pd.testing.assert_frame_equal(model.prior_table(), original.prior_table())
    pd.testing.assert_frame_equal(model.components, original.components)
    assert model.variant == original.variant and model.variant_reason == original.variant_reason
    assert model.family.name == original.family.name and model.family.link == original.family.link
    assert model.priors.r2d2 == original.priors.r2d2
    assert model.priors.aux == original.priors.aux
    assert model.options["dropna"] is True


def test_categorical_order_and_unicode_names_survive(fitted, loaded):
    original = training_data(fitted[0].design)
    back = training_data(loaded.design)
    pd.testing.assert_frame_equal(back, original)
    assert list(back.columns) == ["y", "x", UNICODE, "dose", "site"]
    assert back["dose"].cat.ordered and list(back["dose"].cat.categories) == [
        "low", "mid", "high", "none"]
    assert list(back["site"].cat.categories) == ["Zürich", "Ängelholm", "Bern"]
    assert loaded.design.factors["site"].levels == ("Zürich", "Ängelholm", "Bern")


def test_summary_after_load(fitted, loaded):
    pd.testing.assert_frame_equal(loaded.summary(), fitted[0].summary())
    pd.testing.assert_frame_equal(loaded.variance_decomposition(),
                                  fitted[0].variance_decomposition())
    assert "b[scale(x)]" in loaded.summary().index
    assert repr(loaded)  # prints the model and diagnostics


def test_loaded_fit_predicts_like_the_original(fitted, loaded):
    new = pd.DataFrame({"x": [0.0, 1.5, -1.0], UNICODE: [160.0, 175.0, 190.0],
                        "dose": ["low", "high", "mid"], "site": ["Bern", "Zürich", "Basel"]},
                       index=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        before = fitted[0].predict(new, random_seed=5)
        after = loaded.predict(new, random_seed=5)
    np.testing.assert_allclose(after.draws.values, before.draws.values, rtol=1e-12)
    assert list(after.draws["obs"].values) == ["a", "b", "c"]


def test_fit_saved_without_log_variances_still_predicts(fitted, tmp_path):
    """Fits saved before R2 and phi were sampled as log V get log V = log(phi W) on load."""
    fit = fitted[0]
    old = Fit(model=fit.model, idata=fit.idata.copy(), sampler=fit.sampler)
    del old.idata.posterior["log_V"]
    back = load(old.save(tmp_path / "old.nc"))
    np.testing.assert_allclose(back.idata.posterior["log_V"].values,
                               fit.idata.posterior["log_V"].values, rtol=1e-10)
    new = pd.DataFrame({"x": [0.5], UNICODE: [170.0], "dose": ["low"], "site": ["Bern"]})
    np.testing.assert_allclose(back.predict(new, random_seed=5).draws.values,
                               fit.predict(new, random_seed=5).draws.values, rtol=1e-9)


def test_resave_of_a_loaded_fit(loaded, tmp_path):
    again = load(loaded.save(tmp_path / "again.nc"))
    np.testing.assert_array_equal(again.idata.posterior["R2"].values,
                                  loaded.idata.posterior["R2"].values)
    pd.testing.assert_frame_equal(training_data(again.design), training_data(loaded.design))


# ---- training data of every supported type, with a stand-in posterior ---------------------


def _stand_in_fit(model: Model) -> Fit:
    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"R2": rng.uniform(size=(2, 30))},
                         sample_stats={"diverging": np.zeros((2, 30), dtype=bool)})
    return Fit(model=model, idata=idata, sampler="nutpie")


def test_every_column_type_round_trips(tmp_path):
    n = 12
    rng = np.random.default_rng(1)
    data = pd.DataFrame({
        "y": rng.normal(size=n),
        "flag": rng.uniform(size=n) < 0.5,
        "count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
        "int_factor": rng.integers(10, 13, n),
        "text": pd.array(rng.choice(["α", "β", "γ"], n), dtype="str"),
        "obj": np.array(rng.choice(["u v", "w"], n), dtype=object),
        "num_cat": pd.Categorical(rng.choice([3, 1, 2], n), categories=[3, 1, 2]),
        "with space": rng.normal(size=n),
    }, index=pd.Index(np.arange(100, 100 + n), name="id"))
    data.loc[104, "count"] = pd.NA
    data.loc[105, "text"] = None
    formula = ("y ~ flag + count + text + obj + num_cat + `with space` + (1 | int_factor)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", R2D2FormulaWarning)
        model = Model(formula, data, dropna=True)
    fit = _stand_in_fit(model)
    back = load(save_fit(fit, tmp_path / "types.nc"))
    original = training_data(model.design)
    pd.testing.assert_frame_equal(training_data(back.design), original)
    assert back.design.n_dropped == 2
    assert back.design.row_index.equals(model.design.row_index)
    assert back.design.row_index.name == "id"
    np.testing.assert_array_equal(back.design.common.matrix, model.design.common.matrix)
    assert back.design.common.labels == model.design.common.labels
    assert back.sampler == "nutpie"
    assert list(back.summary().index) == ["R2"]


def test_default_prior_round_trips(tmp_path):
    data = pd.DataFrame({"y": [0, 1, 2, 1, 3, 0, 2, 4], "x": np.arange(8.0),
                         "g": list("abababab")})
    model = Model("y ~ x + (1 | g)", data, family="poisson")
    back = load(_stand_in_fit(model).save(tmp_path / "poisson.nc"))
    assert back.model.options["prior"] is None and back.model.options["priors"] is None
    assert back.model.family.name == "poisson" and back.model.variant == "R2D2-GLMM"
    pd.testing.assert_frame_equal(back.model.prior_table(), model.prior_table())


# ---- files that are not saved fits -------------------------------------------------------


def test_plain_arviz_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "plain.nc"
    az.from_dict(posterior={"mu": np.zeros((1, 5))}).to_netcdf(str(path))
    with pytest.raises(LoadError, match=r"not a fit saved by r2d2formula.*arviz\.from_netcdf"):
        load(path)


def test_not_a_netcdf_file(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("just text", encoding="utf-8")
    with pytest.raises(LoadError, match=r"cannot read .*notes\.nc.* as a netCDF file"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(LoadError, match=r"no file .*absent\.nc"):
        load(tmp_path / "absent.nc")


def test_load_is_exported():
    assert r2d2formula.load is load and "load" in r2d2formula.__all__
