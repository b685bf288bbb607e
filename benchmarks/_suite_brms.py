"""brms as a contender: a generated R script run by Rscript, and its draws read back.

The R script mirrors ``_suite_child.py``: it appends ``{"event": ..., "t": ...}`` lines to the
result file (``started`` -> ``imports`` -> ``data`` -> ``model_start`` -> ``compiled`` ->
``sampled`` -> ``done``) and ends with a ``{"result": ...}`` line. brms has no hook at the
first iteration: ``brm(..., chains = 0)`` builds the Stan data and code and compiles the model
(``compiled``, the set-up), then ``brm(..., fit = <that>)`` samples with the compiled model
(its own data checks, the start of rstan's worker processes and brms's renaming count as
sampling). The draws go to a CSV; the minimum bulk ESS is computed here, with the same arviz
function as for the Python contenders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["r_script", "draws_ess"]

_FAMILIES = {"gaussian": "gaussian()", "poisson": "poisson()", "bernoulli": "bernoulli()"}

_TEMPLATE = r"""
t_started <- as.numeric(Sys.time())
RESULT <- {result}
event <- function(name, t = as.numeric(Sys.time())) {{
  cat(sprintf('{{"event": "%s", "t": %.6f}}\n', name, t), file = RESULT, append = TRUE)
}}
finish <- function(values) {{
  cat(jsonlite::toJSON(list(result = values), auto_unbox = TRUE, digits = NA, null = "null"),
      "\n", file = RESULT, append = TRUE)
}}
event("started", t_started)
status <- tryCatch({{
  suppressPackageStartupMessages({{ library(brms); library(jsonlite) }})
  versions <- list(brms = as.character(packageVersion("brms")),
                   rstan = as.character(packageVersion("rstan")),
                   R = paste(R.version$major, R.version$minor, sep = "."))
  event("imports")
  data <- read.csv({data}, stringsAsFactors = FALSE)
  for (f in {factors}) data[[f]] <- factor(as.character(data[[f]]))
  event("data")
  event("model_start")
  if ({mode} == "design") {{
    sdata <- make_standata({formula}, data = data, family = {family}, prior = {prior})
    event("design")
    finish(list(ok = TRUE, versions = versions, n_rows = nrow(data)))
  }} else {{
    fit0 <- brm({formula}, data = data, family = {family}, prior = {prior}, chains = 0,
                backend = "rstan", refresh = 0, silent = 2)
    event("compiled")
    fit <- brm({formula}, data = data, family = {family}, prior = {prior}, fit = fit0,
               chains = {chains}, iter = {iter}, warmup = {warmup}, cores = {cores},
               seed = {seed}, backend = "rstan", refresh = 0, silent = 2)
    event("sampled")
    event("done")
    draws <- as.data.frame(posterior::as_draws_df(fit))
    keep <- setdiff(names(draws), c("lp__", "lprior"))
    write.csv(draws[, keep], {draws}, row.names = FALSE)
    np <- nuts_params(fit)
    elapsed <- rstan::get_elapsed_time(fit$fit)
    finish(list(ok = TRUE, versions = versions, n_rows = nrow(data),
                divergences = sum(np$Value[np$Parameter == "divergent__"]),
                chain_seconds_max = max(rowSums(elapsed)),
                chain_seconds_sum = sum(elapsed)))
  }}
  0L
}}, error = function(e) {{
  finish(list(ok = FALSE, error = conditionMessage(e)))
  1L
}})
quit(status = status)
"""


def _r_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid R string literal here


def r_script(*, formula: str, family: str, factors: tuple[str, ...], prior: str | None,
             data_csv: Path, result_path: Path, draws_csv: Path, mode: str, draws: int,
             tune: int, chains: int, cores: int, seed: int) -> str:
    """The R code that fits (or, ``mode="design"``, only builds the Stan data of) one model."""
    factor_vec = "c(" + ", ".join(_r_string(f) for f in factors) + ")" if factors else \
        "character(0)"
    return _TEMPLATE.format(
        result=_r_string(str(result_path)), data=_r_string(str(data_csv)),
        factors=factor_vec, mode=_r_string(mode), formula=f"as.formula({_r_string(formula)})",
        family=_FAMILIES[family], prior=prior or "NULL", chains=chains, iter=tune + draws,
        warmup=tune, cores=cores, seed=seed, draws=_r_string(str(draws_csv)),
    )


def draws_ess(draws_csv: Path) -> dict:
    """Minimum bulk ESS (arviz, as for the Python contenders) over brms's draws."""
    import arviz as az

    frame = pd.read_csv(draws_csv)
    chains = frame[".chain"].to_numpy()
    frame = frame.drop(columns=[c for c in (".chain", ".iteration", ".draw") if c in frame])
    n_chains = len(np.unique(chains))
    values = frame.to_numpy(dtype=float)[np.argsort(chains, kind="stable")]
    values = values.reshape(n_chains, -1, values.shape[1])
    ess = np.asarray(az.ess(az.convert_to_dataset({"theta": values}), method="bulk")["theta"])
    finite = np.where(np.isfinite(ess), ess, np.inf)
    at = int(np.argmin(finite))
    return {
        "min_ess": None if not np.isfinite(finite[at]) else float(finite[at]),
        "min_ess_param": str(frame.columns[at]),
        "n_params": int(values.shape[2]),
        "draws_out": int(values.shape[1]),
        "chains_out": n_chains,
    }
