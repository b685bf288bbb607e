"""Write the teaching notebooks of ``notebooks/`` (without outputs) from the cells below.

Edit the cells here and run ``python notebooks/make_notebooks.py``; the ``.ipynb`` files are
generated, so they stay free of outputs in git (``tests/test_notebooks.py`` checks both that
they match this script and that they run).

Each notebook reads ``R2D2_NOTEBOOK_DRAWS`` (posterior draws per chain, default 1000) and
``R2D2_NOTEBOOK_CHAINS`` (default 4) from the environment, so CI runs them with few draws.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETTINGS = '''\
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

{imports}

# CI runs this notebook with R2D2_NOTEBOOK_DRAWS=100; use the defaults for real work
DRAWS = int(os.environ.get("R2D2_NOTEBOOK_DRAWS", "1000"))
CHAINS = int(os.environ.get("R2D2_NOTEBOOK_CHAINS", "4"))
QUICK = DRAWS < 500
SAMPLING = dict(draws=DRAWS, tune=DRAWS, chains=CHAINS, random_seed=1, progressbar=not QUICK)
if QUICK:
    # few draws on purpose: the effective sample size is too small, and the library says so
    warnings.simplefilter("ignore", DiagnosticsWarning)
print(f"{{CHAINS}} chains x {{DRAWS}} draws")'''


def settings(imports: str) -> str:
    """The first code cell: imports and the draw settings read from the environment."""
    return SETTINGS.format(imports=f"from r2d2formula import {imports}")


LABORATORY = [
    new_markdown_cell("""\
# Which factor explains how much? An R2D2M2 walkthrough

A laboratory measures the expression of microRNAs in mice. Each mouse has an age and got a dose
of a drug; every microRNA is measured in every mouse under a few stress conditions. The
questions are not only *does dose matter?* but *how much of the variation in expression is due
to the dose, the mouse, the microRNA and the stress condition?*

The R2D2M2 prior (Aguilar & Bürkner, 2023) answers this directly: it puts a prior on the model's
R², the share of the variance that all the terms explain together, and a Dirichlet splits that
explained variance over the components (each predictor and each group term). The posterior of
these shares, φ, *is* the variance decomposition.

We use simulated data with known shares so we can check the answer."""),
    new_code_cell(settings("R2D2, DiagnosticsWarning, Model, datasets")),
    new_markdown_cell("""\
## The data

`datasets.simulate_laboratory` draws a crossed design: mice × microRNAs × stress conditions,
with `age` and `dose` per mouse. The true shares of the explained variance and the true R² are
stored in the data frame's `attrs`."""),
    new_code_cell("""\
df = datasets.simulate_laboratory(n_mice=16, n_micro_rna=10, n_stress=3, random_seed=1)
truth = pd.Series(df.attrs["true_shares"], name="true share")
print(df.attrs["formula"])
print("true R2:", df.attrs["true_r2"])
print(truth)
df.head()"""),
    new_markdown_cell("""\
## From formula to model

We think that the factors together explain between 30% and 80% of the variance.
`R2D2.from_interval` turns that statement into the Beta prior on R², with 90% of its mass on
the interval. The model shows itself: the variant chosen (and why), the components, every prior
and the equations."""),
    new_code_cell("""\
prior = R2D2.from_interval(0.3, 0.8, mass=0.9)
print(prior.describe())
prior.plot();"""),
    new_code_cell("""\
model = Model(df.attrs["formula"], df, prior=prior)
model"""),
    new_code_cell("""\
fit = model.fit(**SAMPLING)
fit"""),
    new_markdown_cell("""\
## Which factor explains how much

`variance_decomposition()` gives, per component, φ (the share of the *explained* variance; the
shares sum to one) and φ·R² (the share of the *total* variance). Next to it, the shares we
simulated."""),
    new_code_cell("""\
decomposition = fit.variance_decomposition()
table = decomposition[["phi_mean", "phi_hdi_3%", "phi_hdi_97%"]].join(truth)
table["inside HDI"] = table["true share"].between(table["phi_hdi_3%"], table["phi_hdi_97%"])
table.round(3)"""),
    new_code_cell("""\
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
fit.plot_variance_decomposition(ax=axes[0])
axes[0].set_title("posterior shares of the explained variance")

order = table.sort_values("phi_mean").index
y = np.arange(len(order))
axes[1].errorbar(table.loc[order, "phi_mean"], y,
                 xerr=[table.loc[order, "phi_mean"] - table.loc[order, "phi_hdi_3%"],
                       table.loc[order, "phi_hdi_97%"] - table.loc[order, "phi_mean"]],
                 fmt="o", label="posterior mean, 94% HDI")
axes[1].plot(table.loc[order, "true share"], y, "x", color="C3", markersize=10,
             label="true share")
axes[1].set_yticks(y, order)
axes[1].set_xlabel("share of the explained variance")
axes[1].legend()
axes[1].set_title("against the truth");"""),
    new_markdown_cell("""\
## R² and the prior

The posterior of R² against its Beta prior: the data has moved it towards the true value."""),
    new_code_cell("""\
ax = fit.plot_r2(check_prior=False)
ax.axvline(df.attrs["true_r2"], color="C3", linestyle="--", label="true R2")
ax.legend();"""),
    new_markdown_cell("""\
## The effects behind the shares

The microRNA component is the largest: the caterpillar plot shows each microRNA's effect, and
the conditional plot the effect of dose within each stress condition."""),
    new_code_cell("""\
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
fit.plot_group_effects("microRNA", ax=axes[0])
fit.plot_conditional("dose", by="stress", ax=axes[1]);"""),
    new_markdown_cell("""\
## Does the model reproduce the data?

A posterior predictive check: replicated data sets against the observed expression."""),
    new_code_cell("""\
fit.plot_ppc(num_pp_samples=30);"""),
    new_markdown_cell("""\
## Summary

From one formula, the fit tells which factor explains how much of the variation, with
uncertainty, and the intervals cover the shares we simulated. Try fewer mice
(`n_mice=6`) and see the intervals of the mouse component widen."""),
]

DIABETES = [
    new_markdown_cell("""\
# Shrinkage with R2D2: 64 predictors on the diabetes data

The diabetes data (Efron et al., 2004) has 442 patients and 10 baseline measurements; the
`diabetes64` version adds their squares and pairwise interactions, 64 standardized predictors
in all. With that many predictors, least squares overfits: it gives every coefficient whatever
value fits the training rows best.

The R2D2 prior (Zhang et al., 2022) puts a prior on R² and splits the explained variance over
the 64 coefficients with a Dirichlet. With a small concentration most coefficients are shrunk
towards zero while a few large ones stay. Here we compare the two on held-out patients."""),
    new_code_cell(settings("R2D2, DiagnosticsWarning, Model, datasets")),
    new_code_cell("""\
data = datasets.load("diabetes64")
predictors = [c for c in data.columns if c != "y"]
print(len(predictors), "predictors,", len(data), "patients")

# a held-out split: fit on 300 patients, test on the other 142
rng = np.random.default_rng(2024)
test_rows = rng.choice(data.index, size=142, replace=False)
train, test = data.drop(index=test_rows), data.loc[test_rows]
len(train), len(test)"""),
    new_markdown_cell("""\
## Least squares

`numpy.linalg.lstsq` with an intercept column."""),
    new_code_cell("""\
def with_intercept(frame):
    return np.column_stack([np.ones(len(frame)), frame[predictors].to_numpy()])

coef, *_ = np.linalg.lstsq(with_intercept(train), train["y"].to_numpy(), rcond=None)
ols = pd.Series(coef[1:], index=predictors)
ols_pred = with_intercept(test) @ coef"""),
    new_markdown_cell("""\
## R2D2

One formula with all 64 predictors. A concentration of 0.5 lets the Dirichlet put most of the
explained variance on a few coefficients."""),
    new_code_cell("""\
formula = "y ~ " + " + ".join(predictors)
model = Model(formula, train, prior=R2D2(r2_mean=0.5, r2_precision=2, concentration=0.5))
print(model.variant)
fit = model.fit(**SAMPLING)
fit.summary().loc[["Intercept", "sigma", "R2"]]"""),
    new_markdown_cell("""\
## Coefficients: least squares against posterior means

Points on the diagonal are not shrunk; points near the horizontal line are shrunk to zero."""),
    new_code_cell("""\
summary = fit.summary()
bayes = pd.Series(summary.loc[[f"b[{p}]" for p in predictors], "mean"].to_numpy(),
                  index=predictors)

fig, ax = plt.subplots(figsize=(6, 6))
ax.scatter(ols, bayes)
limit = 1.05 * np.abs(ols).max()
ax.plot([-limit, limit], [-limit, limit], color="grey", linestyle="--", label="no shrinkage")
ax.axhline(0, color="black", linewidth=0.5)
for name in np.abs(bayes).sort_values().index[-4:]:
    ax.annotate(name, (ols[name], bayes[name]))
ax.set_xlabel("least squares coefficient")
ax.set_ylabel("R2D2 posterior mean")
ax.legend()
print("sum of |coefficients|: least squares", round(np.abs(ols).sum()),
      "R2D2", round(np.abs(bayes).sum()))"""),
    new_markdown_cell("""\
## Out-of-sample error

`fit.predict(test)` runs the held-out rows through the fitted model; its posterior mean is the
point prediction."""),
    new_code_cell("""\
bayes_pred = fit.predict(test, summary=True)["mean"].to_numpy()

def rmse(pred):
    return float(np.sqrt(np.mean((test["y"].to_numpy() - pred) ** 2)))

errors = pd.Series({"least squares": rmse(ols_pred), "R2D2": rmse(bayes_pred),
                    "intercept only": rmse(np.full(len(test), train["y"].mean()))},
                   name="test RMSE")
errors.round(1)"""),
    new_markdown_cell("""\
## Which terms carry the explained variance

The variance decomposition lists the share φ of each coefficient; the ten largest:"""),
    new_code_cell("""\
decomposition = fit.variance_decomposition()
decomposition.sort_values("phi_mean", ascending=False).head(10)[
    ["phi_mean", "phi_hdi_3%", "phi_hdi_97%"]].round(3)"""),
    new_code_cell("""\
fit.plot_r2(check_prior=False);"""),
    new_markdown_cell("""\
## Summary

Least squares spends the 64 degrees of freedom on the training rows; R2D2 keeps the large
effects (`bmi`, `ltg`, `map`) and shrinks the rest, and predicts held-out patients better.
Change `concentration` to see the trade-off: larger values spread the variance more evenly."""),
]

GLMM = [
    new_markdown_cell("""\
# A Poisson GLMM: seizure counts, new patients, LOO

The epilepsy data (Thall & Vail, 1990) counts the seizures of 59 patients in four two-week
periods, after randomisation to a drug (`Trt`) or placebo. We model the counts with a Poisson
GLMM with a random intercept per patient:

    count ~ zAge + zBase + Trt + (1 | patient)

The library picks the R2D2-GLMM prior (R² on the scale of the linear predictor, through the
generalized beta prime approximation). Then we predict counts for *new* patients, and compare
models with LOO."""),
    new_code_cell(settings("DiagnosticsWarning, Model, compare, datasets")),
    new_code_cell("""\
epilepsy = datasets.load("epilepsy")
epilepsy.head()"""),
    new_code_cell("""\
model = Model("count ~ zAge + zBase + Trt + (1 | patient)", epilepsy, family="poisson")
model"""),
    new_code_cell("""\
fit = model.fit(**SAMPLING)
print(fit)
fit.variance_decomposition().round(3)"""),
    new_markdown_cell("""\
## Predictions for new patients

A new patient's own effect is unknown. `new_levels="sample"` draws it from the population
distribution of patients (its SD is estimated), so the prediction carries the between-patient
variation. `new_levels="zero"` predicts for an average patient: the population mean, with only
the uncertainty of the fixed effects. A known patient gets its own estimated effect."""),
    new_code_cell("""\
new = pd.DataFrame({
    "zAge": [0.0, 0.0, 0.0, 0.0],
    "zBase": [0.0, 0.0, 1.0, 1.0],
    "Trt": [0, 1, 0, 1],
    "patient": ["new A", "new B", "new C", "new D"],
})
sampled = fit.predict(new, new_levels="sample", random_seed=1).summary()
average = fit.predict(new, new_levels="zero").summary()
pd.concat({"sample": sampled, "zero": average}, axis=1).round(2)"""),
    new_code_cell("""\
draws_sample = fit.predict(new.iloc[[0]], new_levels="sample", random_seed=1).values.ravel()
draws_zero = fit.predict(new.iloc[[0]], new_levels="zero").values.ravel()
fig, ax = plt.subplots(figsize=(7, 4))
bins = np.linspace(0, np.quantile(draws_sample, 0.99), 50)
ax.hist(draws_sample, bins=bins, alpha=0.6, label='new patient, new_levels="sample"')
ax.hist(draws_zero, bins=bins, alpha=0.6, label='average patient, new_levels="zero"')
ax.set_xlabel("expected seizures in two weeks (placebo, average age and baseline)")
ax.legend();"""),
    new_markdown_cell("""\
Draws of new *counts* (`kind="response"`) add the Poisson noise on top of the mean:"""),
    new_code_cell("""\
fit.predict(new, kind="response", new_levels="sample", random_seed=2).summary().round(1)"""),
    new_markdown_cell("""\
## Checking and comparing models

Counts of seizures are often overdispersed. A second model adds an observation-level random
effect `(1 | obs)`, a common remedy. PSIS-LOO estimates each model's out-of-sample predictive
accuracy from the stored log-likelihood; `compare` ranks them."""),
    new_code_cell("""\
fit.sample_posterior_predictive(random_seed=1)
fit.plot_ppc(num_pp_samples=30);"""),
    new_code_cell("""\
overdispersed = Model("count ~ zAge + zBase + Trt + (1 | patient) + (1 | obs)", epilepsy,
                      family="poisson").fit(**SAMPLING)
with warnings.catch_warnings():
    # a few observations with high Pareto k are expected for per-observation effects
    warnings.simplefilter("ignore", UserWarning)
    print(fit.loo())
    comparison = compare({"patient": fit, "patient + obs": overdispersed})
comparison"""),
    new_code_cell("""\
fit.bayes_r2(summary=True)"""),
    new_markdown_cell("""\
## Summary

The prediction for a new patient is far wider than for the average patient: most of the
uncertainty about a new patient's seizure rate is the variation between patients, which
`new_levels="sample"` carries and `"zero"` leaves out. LOO prefers the model with the
observation-level effect, a sign of overdispersion in the Poisson model."""),
]

NOTEBOOKS = {
    "01_laboratory_r2d2m2.ipynb": LABORATORY,
    "02_diabetes_shrinkage.ipynb": DIABETES,
    "03_glmm_predictions.ipynb": GLMM,
}


def build(cells: list) -> nbformat.NotebookNode:
    """A notebook of ``cells`` with a Python 3 kernel and no outputs."""
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    notebook.metadata["language_info"] = {"name": "python"}
    for k, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{k:02d}"  # stable ids, so regenerating changes nothing
    return notebook


def main() -> None:
    """Write every notebook next to this script."""
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(cells), HERE / name)


if __name__ == "__main__":
    main()
