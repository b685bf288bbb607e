"""Command line: ``r2d2formula fit``, ``summary``, ``predict`` and ``datasets``.

This module only parses arguments and calls the public API (STYLE rule 13).

Examples
--------
>>> main(["datasets"])  # doctest: +ELLIPSIS
sleepstudy ...
0
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from r2d2formula import (
    R2D2,
    DiagnosticsWarning,
    Model,
    R2D2FormulaError,
    __version__,
    datasets,
    load,
)

__all__ = ["main", "build_parser", "parse_prior"]

PROG = "r2d2formula"
_PRIOR_KEYS = ("r2_mean", "r2_precision", "concentration", "autoscale", "kernel", "approx")

_FIT_EPILOG = """\
examples:
  r2d2formula fit --example sleepstudy "Reaction ~ Days + (Days | Subject)"
  r2d2formula fit data.csv "y ~ x + (1 | g)" --family poisson --draws 2000
  r2d2formula fit data.csv "s | trials(n) ~ x + (1 | g)" --family binomial --link probit
  r2d2formula fit data.csv "y ~ x1 + x2" --prior r2_mean=0.3,r2_precision=10
  r2d2formula fit --example sleepstudy "Reaction ~ Days + (1 | Subject)" --output fit.nc
"""

_PREDICT_EPILOG = """\
examples:
  r2d2formula predict fit.nc new.csv
  r2d2formula predict fit.nc new.csv --kind response --seed 1 --output pred.csv
  r2d2formula predict fit.nc new.csv --new-levels zero
"""


class _UsageError(Exception):
    """Bad command-line input that argparse itself cannot detect."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``r2d2formula`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian (multilevel) regression from lme4-style formulas with "
                    "R2D2-family priors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    fit = sub.add_parser(
        "fit", help="fit a model and print the summary and the variance decomposition",
        usage="%(prog)s [options] (DATA.csv | --example NAME) FORMULA",
        description="Fit FORMULA to DATA.csv (or to a bundled data set with --example) and\n"
                    "print the model, the posterior summary, the variance decomposition and\n"
                    "the sampler diagnostics.",
        epilog=_FIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("inputs", nargs="+", metavar="DATA.csv FORMULA",
                     help="a CSV file (omit it with --example) and an lme4-style formula")
    fit.add_argument("--example", metavar="NAME",
                     help="use a bundled data set instead of a CSV file "
                          "(see 'r2d2formula datasets')")
    fit.add_argument("--family", default="gaussian",
                     help="gaussian (default), bernoulli, binomial, poisson or negativebinomial")
    fit.add_argument("--link", help="link function (default: the family's; logit or probit "
                                    "for bernoulli and binomial)")
    fit.add_argument("--prior", action="append", default=[], metavar="KEY=VALUE,...",
                     help="R2D2 hyperparameters, e.g. r2_mean=0.3,r2_precision=10,"
                          "concentration=1; also autoscale, kernel, approx. May be repeated.")
    fit.add_argument("--variant", default="auto",
                     help="auto (default: chosen from the family and the formula), R2D2, "
                          "R2D2-GLM, R2D2M2 or R2D2-GLMM")
    fit.add_argument("--dropna", action="store_true",
                     help="drop rows with missing values in the columns the formula uses")
    fit.add_argument("--draws", type=int, help="posterior draws per chain")
    fit.add_argument("--tune", type=int, help="tuning steps per chain")
    fit.add_argument("--chains", type=int, help="number of chains")
    fit.add_argument("--seed", type=int, help="random seed")
    fit.add_argument("--sampler",
                     help="nutpie, pymc, numpyro or blackjax (default: the library's default)")
    fit.add_argument("--target-accept", type=float, help="NUTS target acceptance rate")
    _add_hdi_prob(fit)
    fit.add_argument("--output", metavar="FILE.nc",
                     help="save the fit to a netCDF file (read it with 'r2d2formula summary', "
                          "'r2d2formula predict' or r2d2formula.load)")
    fit.add_argument("--quiet", action="store_true",
                     help="no progress bar while sampling (it is shown on stderr by default)")
    fit.set_defaults(handler=_run_fit)

    summary = sub.add_parser(
        "summary", help="print the model, summary and variance decomposition of a saved fit",
        usage="%(prog)s [options] FIT.nc",
        description="Print the model, the posterior summary, the variance decomposition and\n"
                    "the sampler diagnostics of a fit saved with 'r2d2formula fit --output'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    summary.add_argument("fit_file", metavar="FIT.nc", help="a fit saved with --output")
    _add_hdi_prob(summary)
    summary.set_defaults(handler=_run_summary)

    predict = sub.add_parser(
        "predict", help="predict new rows from a saved fit (mean, sd and HDI per row)",
        usage="%(prog)s [options] FIT.nc NEW.csv",
        description="Predict the rows of NEW.csv with a fit saved by 'r2d2formula fit\n"
                    "--output' and write one row per input row: the input columns, then the\n"
                    "posterior mean, sd and HDI of the prediction (CSV on stdout, or --output).",
        epilog=_PREDICT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("fit_file", metavar="FIT.nc", help="a fit saved with --output")
    predict.add_argument("data_file", metavar="NEW.csv",
                         help="the rows to predict (the response column may be absent)")
    predict.add_argument("--kind", choices=("mean", "link", "response"), default="mean",
                         help="mean response (default), linear predictor, or draws of new "
                              "observations")
    predict.add_argument("--new-levels", choices=("sample", "zero", "error"), default="sample",
                         help="levels of a grouping factor not seen in training: draw their "
                              "effects from the population (sample, default), use the "
                              "population average (zero), or fail (error)")
    predict.add_argument("--no-group-effects", action="store_true",
                         help="predict for the population: every group effect zero")
    _add_hdi_prob(predict, what="the HDI")
    predict.add_argument("--seed", type=int, help="random seed (for --kind response and new "
                                                   "levels)")
    predict.add_argument("--output", metavar="PRED.csv",
                         help="write the table to this CSV file instead of stdout")
    predict.set_defaults(handler=_run_predict)

    listing = sub.add_parser("datasets", help="list the bundled data sets",
                             description="List the bundled data sets and their typical models.")
    listing.set_defaults(handler=_run_datasets)
    return parser


def parse_prior(texts: Sequence[str]) -> R2D2 | None:
    """Turn ``--prior`` values such as ``"r2_mean=0.3,r2_precision=10"`` into an R2D2.

    Examples
    --------
    >>> parse_prior(["r2_mean=0.3,r2_precision=10", "kernel=laplace"])
    R2D2(r2_mean=0.3, r2_precision=10.0, concentration=0.5, autoscale=True, kernel='laplace', approx=None)
    >>> parse_prior([]) is None
    True
    """
    values: dict[str, object] = {}
    for text in texts:
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not raw:
                raise _UsageError(f"--prior expects KEY=VALUE pairs, got {item!r}")
            if key not in _PRIOR_KEYS:
                raise _UsageError(
                    f"--prior has no key {key!r}; use {', '.join(_PRIOR_KEYS)}"
                )
            values[key] = _prior_value(key, raw)
    return R2D2(**values) if values else None


def _prior_value(key: str, raw: str) -> object:
    if key in ("kernel", "approx"):
        return raw
    if key == "autoscale":
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise _UsageError(f"--prior autoscale must be true or false, got {raw!r}")
        return lowered in ("true", "1", "yes")
    try:
        return float(raw)
    except ValueError:
        raise _UsageError(f"--prior {key} must be a number, got {raw!r}") from None


def _load_data(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """(data, formula) from the positional arguments and --example."""
    if args.example is not None:
        if len(args.inputs) != 1:
            raise _UsageError(
                "with --example give only the formula, e.g. "
                "r2d2formula fit --example sleepstudy \"Reaction ~ Days + (Days | Subject)\""
            )
        return datasets.load(args.example), args.inputs[0]
    if len(args.inputs) != 2:
        raise _UsageError(
            "fit needs DATA.csv and FORMULA (or --example NAME and FORMULA), got "
            f"{len(args.inputs)} argument(s)"
        )
    path, formula = args.inputs
    return _read_csv(path), formula


def _fit_options(args: argparse.Namespace) -> dict:
    """Only the options given on the command line; the library supplies the defaults."""
    options = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
               "random_seed": args.seed, "sampler": args.sampler,
               "target_accept": args.target_accept}
    options = {key: value for key, value in options.items() if value is not None}
    options["progressbar"] = not args.quiet
    return options


def _check_output_path(path: str | None) -> None:
    """Fail before sampling when the output file cannot be written."""
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise _UsageError(f"cannot write {path!r}: the folder {str(parent)!r} does not exist")


def _add_hdi_prob(parser: argparse.ArgumentParser, what: str = "the HDIs in the tables") -> None:
    """The ``--hdi-prob`` option that fit, summary and predict share."""
    parser.add_argument("--hdi-prob", type=float, default=0.94,
                        help=f"probability mass of {what} (default: 0.94)")


def _run_fit(args: argparse.Namespace) -> int:
    _check_output_path(args.output)
    data, formula = _load_data(args)
    model = Model(formula, data, family=args.family, link=args.link,
                  prior=parse_prior(args.prior), variant=args.variant, dropna=args.dropna)
    print(model)
    print(flush=True)
    # stdout carries only the tables; whatever a sampler prints goes to stderr with its
    # progress bar
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        # the problems are printed with the diagnostics below
        warnings.simplefilter("ignore", DiagnosticsWarning)
        fit = model.fit(**_fit_options(args))
    _print_fit_tables(fit, args.hdi_prob)
    if args.output is not None:
        path = fit.save(args.output)
        print(f"saved to {path}")
    return 0


def _print_fit_tables(fit, hdi_prob: float) -> None:
    _section("Summary", fit.summary(hdi_prob=hdi_prob))
    _section("Variance decomposition (phi: share of explained variance; "
             "phi_R2: share of total variance)",
             fit.variance_decomposition(hdi_prob=hdi_prob), default="{:.3f}")
    print(_diagnostics_text(fit))


def _load_fit(path: str):
    with warnings.catch_warnings():
        # a saved fit's diagnostics are printed in full by summary; no warning needed here
        warnings.simplefilter("ignore", DiagnosticsWarning)
        return load(path)


def _run_summary(args: argparse.Namespace) -> int:
    fit = _load_fit(args.fit_file)
    print(fit.model)
    print()
    _print_fit_tables(fit, args.hdi_prob)
    return 0


def _read_csv(path: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise _UsageError(f"{path!r} is empty; give a CSV file with a header row") from None
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise _UsageError(f"cannot read {path!r} as CSV: {first}") from None


def _run_predict(args: argparse.Namespace) -> int:
    _check_output_path(args.output)
    fit = _load_fit(args.fit_file)
    new = _read_csv(args.data_file)
    if new.empty:
        raise _UsageError(f"{args.data_file!r} has no rows to predict")
    table = fit.predict(new, kind=args.kind, group_effects=not args.no_group_effects,
                        new_levels=args.new_levels, random_seed=args.seed, summary=True,
                        hdi_prob=args.hdi_prob)
    overlap = [column for column in table.columns if column in new.columns]
    if overlap:
        raise _UsageError(
            f"NEW.csv has column(s) {overlap} that the prediction table also uses; rename them"
        )
    result = pd.concat([new, table.set_axis(new.index)], axis=1)
    if args.output is None:
        result.to_csv(sys.stdout, index=False)
    else:
        result.to_csv(args.output, index=False)
        print(f"wrote {len(result)} rows to {args.output}", file=sys.stderr)
    return 0


def _section(title: str, table: pd.DataFrame, default: str = "{:.4g}") -> None:
    formatters = {}
    for column in table.columns:
        fmt = "{:.0f}" if column.startswith("ess") else "{:.3f}" if column == "r_hat" else default
        formatters[column] = fmt.format
    print(title)
    print(table.to_string(formatters=formatters))
    print()


def _diagnostics_text(fit) -> str:
    diag = fit.diagnostics()
    sizes = fit.idata.posterior.sizes
    lines = [
        f"Diagnostics ({fit.sampler}, {sizes.get('chain')} chains x {sizes.get('draw')} "
        f"draws): divergences {diag['divergences']}, max R-hat {diag['max_rhat']:.3f}, "
        f"min ESS bulk/tail {diag['min_ess_bulk']:.0f}/{diag['min_ess_tail']:.0f}"
    ]
    lines += [f"  WARNING: {problem}" for problem in diag["problems"]]
    return "\n".join(lines)


def _run_datasets(args: argparse.Namespace) -> int:
    names = datasets.names()
    width = max(len(name) for name in names)
    for name in names:
        print(f"{name:<{width}}  {datasets.describe(name)}")
    return 0


def _error(message: str) -> int:
    first, _, rest = str(message).strip().partition("\n")
    print(f"{PROG}: error: {first}", file=sys.stderr)
    if rest:
        # formula errors mark the offending span on the lines after the message
        print(rest, file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``r2d2formula`` command; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 on bad input (with a one-line ``r2d2formula: error: ...`` message
        on stderr, followed by the marked formula for formula errors).

    Examples
    --------
    >>> main(["summary", "no-such-fit.nc"])  # prints "r2d2formula: error: no file ..."
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        # the reader went away (`r2d2formula predict ... | head`): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python exits right after
        return 0
    except (_UsageError, R2D2FormulaError, ValueError, OSError) as exc:
        return _error(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
