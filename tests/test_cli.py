"""The command line: argument parsing, the data set listing, errors, and one real fit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from r2d2formula import R2D2, datasets
from r2d2formula.cli import _fit_options, build_parser, main, parse_prior

SLEEP = "Reaction ~ Days + (Days | Subject)"


def _error_lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err.strip().splitlines()


# ---- parsing --------------------------------------------------------------------------
def test_parse_fit_with_example():
    args = build_parser().parse_args(
        ["fit", "--example", "sleepstudy", SLEEP, "--draws", "10", "--tune", "20",
         "--chains", "3", "--seed", "7", "--sampler", "pymc", "--target-accept", "0.9",
         "--prior", "r2_mean=0.3,r2_precision=10"]
    )
    assert args.command == "fit"
    assert args.example == "sleepstudy"
    assert args.inputs == [SLEEP]
    assert (args.draws, args.tune, args.chains, args.seed) == (10, 20, 3, 7)
    assert args.sampler == "pymc"
    assert args.target_accept == 0.9
    assert args.family == "gaussian"
    assert args.prior == ["r2_mean=0.3,r2_precision=10"]


def test_parse_fit_with_csv_leaves_sampling_defaults_to_the_library():
    args = build_parser().parse_args(
        ["fit", "data.csv", "y ~ x", "--family", "binomial", "--link", "probit"]
    )
    assert args.inputs == ["data.csv", "y ~ x"]
    assert (args.family, args.link) == ("binomial", "probit")
    assert args.draws is None and args.tune is None and args.chains is None
    assert args.sampler is None and args.target_accept is None and args.output is None


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_fit_options_pass_only_what_was_given_and_show_progress_on_a_terminal(tty, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    args = build_parser().parse_args(["fit", "--example", "sleepstudy", SLEEP, "--draws", "5",
                                      "--seed", "3"])
    assert _fit_options(args) == {"draws": 5, "random_seed": 3, "progressbar": tty}


def test_parse_prior():
    prior = parse_prior(["r2_mean=0.3, r2_precision=10", "concentration=1,autoscale=false"])
    assert prior == R2D2(r2_mean=0.3, r2_precision=10.0, concentration=1.0, autoscale=False)
    assert parse_prior([]) is None
    assert parse_prior(["kernel=laplace,approx=linear"]) == R2D2(kernel="laplace",
                                                                 approx="linear")


@pytest.mark.parametrize("text", ["r2_mean", "r2_mean=", "shape=2", "r2_mean=abc",
                                  "autoscale=maybe"])
def test_parse_prior_rejects_bad_input(text, capsys):
    assert main(["fit", "--example", "sleepstudy", SLEEP, "--prior", text]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("r2d2formula: error: --prior")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("r2d2formula ")


# ---- datasets ---------------------------------------------------------------------------
def test_datasets_lists_every_bundled_set_with_its_description(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(datasets.names())
    for line, name in zip(out, datasets.names(), strict=True):
        assert line.split()[0] == name
        assert line.rstrip().endswith(datasets.describe(name))


# ---- errors: exit status 2 and one line ------------------------------------------------------
def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nothere.csv"
    assert main(["fit", str(missing), "y ~ x"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("r2d2formula: error: ")
    assert "nothere.csv" in lines[0]


def test_unknown_column_in_csv(tmp_path, capsys):
    path = tmp_path / "sleep.csv"
    datasets.load("sleepstudy").to_csv(path, index=False)
    assert main(["fit", str(path), "Reaction ~ Dayz + (Days | Subject)"]) == 2
    lines = _error_lines(capsys)
    assert lines[0].startswith("r2d2formula: error: ")
    assert "'Dayz'" in lines[0]
    # the lines after the message mark the span in the formula, as the library does
    assert "Reaction ~ Dayz" in "\n".join(lines[1:])


def test_bad_family(capsys):
    assert main(["fit", "--example", "sleepstudy", SLEEP, "--family", "gamma"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("r2d2formula: error: unknown family 'gamma'")


def test_bad_link(capsys):
    assert main(["fit", "--example", "sleepstudy", SLEEP, "--link", "log"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("r2d2formula: error: ")


def test_unknown_example(capsys):
    assert main(["fit", "--example", "nope", "y ~ x"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1
    assert "unknown data set 'nope'" in lines[0]


@pytest.mark.parametrize("argv", [
    ["fit", SLEEP],
    ["fit", "--example", "sleepstudy", "data.csv", SLEEP],
    ["fit", "a.csv", "b.csv", SLEEP],
])
def test_wrong_number_of_positional_arguments(argv, capsys):
    assert main(argv) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("r2d2formula: error: ")


def test_output_not_available_fails_before_sampling(capsys):
    from r2d2formula.results import Fit

    if hasattr(Fit, "save"):
        pytest.skip("Fit.save exists; --output is supported")
    assert main(["fit", "--example", "sleepstudy", SLEEP, "--output", "fit.nc"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was built or sampled
    assert captured.err.strip() == (
        "r2d2formula: error: --output is not available yet: this version cannot save fits; "
        "run without --output"
    )


def test_console_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "r2d2formula.cli", "fit", str(tmp_path / "x.csv"), "y ~ x"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("r2d2formula: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- one real fit -----------------------------------------------------------------------------
def test_fit_example_sleepstudy_end_to_end(capsys):
    status = main(["fit", "--example", "sleepstudy", SLEEP, "--draws", "100", "--tune", "100",
                   "--chains", "2", "--sampler", "pymc", "--seed", "1"])
    out = capsys.readouterr().out
    assert status == 0
    assert "variant: R2D2M2, because" in out
    for component in ("Days", "1|Subject", "Days|Subject"):
        assert component in out
    for row in ("Intercept", "b[Days]", "sigma", "R2", "phi[Days]", "phi[1|Subject]",
                "phi[Days|Subject]", "sd_Subject[1]", "sd_Subject[Days]",
                "cor_Subject[1, Days]"):
        assert row in out
    assert "Variance decomposition" in out
    assert "phi_mean" in out and "phi_R2_mean" in out
    assert "Diagnostics (pymc, 2 chains x 100 draws): divergences" in out
