"""Command line: ``r2d2formula fit`` and ``r2d2formula datasets``.

This module only parses arguments and calls the public API (STYLE rule 13).

Examples
--------
>>> main(["datasets"])  # doctest: +ELLIPSIS
sleepstudy ...
0
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import pandas as pd

from r2d2formula import R2D2, DiagnosticsWarning, Model, R2D2FormulaError, __version__, datasets

__all__ = ["main", "build_parser", "parse_prior"]

PROG = "r2d2formula"
_PRIOR_KEYS = ("r2_mean", "r2_precision", "concentration", "autoscale", "kernel", "approx")

_FIT_EPILOG = """\
examples:
  r2d2formula fit --example sleepstudy "Reaction ~ Days + (Days | Subject)"
  r2d2formula fit data.csv "y ~ x + (1 | g)" --family poisson --draws 2000
  r2d2formula fit data.csv "s | trials(n) ~ x + (1 | g)" --family binomial --link probit
  r2d2formula fit data.csv "y ~ x1 + x2" --prior r2_mean=0.3,r2_precision=10
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
    fit.add_argument("--hdi-prob", type=float, default=0.94,
                     help="probability mass of the HDIs in the tables (default: 0.94)")
    fit.add_argument("--output", metavar="FILE.nc", help="save the fit to a netCDF file")
    fit.set_defaults(handler=_run_fit)

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
    return pd.read_csv(path), formula


def _fit_options(args: argparse.Namespace) -> dict:
    """Only the options given on the command line; the library supplies the defaults."""
    options = {"draws": args.draws, "tune": args.tune, "chains": args.chains,
               "random_seed": args.seed, "sampler": args.sampler,
               "target_accept": args.target_accept}
    options = {key: value for key, value in options.items() if value is not None}
    options["progressbar"] = sys.stderr.isatty()
    return options


def _can_save() -> bool:
    from r2d2formula.results import Fit

    return hasattr(Fit, "save")


def _run_fit(args: argparse.Namespace) -> int:
    if args.output is not None and not _can_save():
        raise _UsageError("--output is not available yet: this version cannot save fits; "
                          "run without --output")
    data, formula = _load_data(args)
    model = Model(formula, data, family=args.family, link=args.link,
                  prior=parse_prior(args.prior), variant=args.variant, dropna=args.dropna)
    print(model)
    print(flush=True)
    with warnings.catch_warnings():
        # the problems are printed with the diagnostics below
        warnings.simplefilter("ignore", DiagnosticsWarning)
        fit = model.fit(**_fit_options(args))
    _section("Summary", fit.summary(hdi_prob=args.hdi_prob))
    _section("Variance decomposition (phi: share of explained variance; "
             "phi_R2: share of total variance)",
             fit.variance_decomposition(hdi_prob=args.hdi_prob), default="{:.3f}")
    print(_diagnostics_text(fit))
    if args.output is not None:
        fit.save(args.output)
        print(f"saved to {args.output}")
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
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (_UsageError, R2D2FormulaError, ValueError, OSError) as exc:
        return _error(str(exc) or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
