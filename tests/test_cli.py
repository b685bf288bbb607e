"""The command line: argument parsing, the data set listing, errors, and one real fit."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
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
    # the progress bar goes to stderr whether or not it is a terminal; --quiet turns it off
    assert _fit_options(args) == {"draws": 5, "random_seed": 3, "progressbar": True}
    quiet = build_parser().parse_args(["fit", "--example", "sleepstudy", SLEEP, "--quiet"])
    assert _fit_options(quiet) == {"progressbar": False}


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


def test_output_into_a_missing_folder_fails_before_sampling(tmp_path, capsys):
    target = tmp_path / "nofolder" / "fit.nc"
    assert main(["fit", "--example", "sleepstudy", SLEEP, "--output", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing was built or sampled
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "nofolder" in lines[0]


def test_console_error_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "r2d2formula.cli", "fit", str(tmp_path / "x.csv"), "y ~ x"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("r2d2formula: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- one real fit, saved, then summarised and predicted from the file -------------------------
@pytest.fixture(scope="module")
def saved_fit(tmp_path_factory):
    """(exit status, stdout, stderr, path) of one `fit --output` run, shared by the tests below."""
    path = tmp_path_factory.mktemp("cli") / "sleep.nc"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["fit", "--example", "sleepstudy", SLEEP, "--draws", "100", "--tune",
                       "100", "--chains", "2", "--sampler", "pymc", "--seed", "1",
                       "--output", str(path)])
    return status, out.getvalue(), err.getvalue(), path


def test_fit_example_sleepstudy_end_to_end(saved_fit):
    status, out, err, path = saved_fit
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
    # the sampler's progress and log (on stderr, which PyMC binds at import, so this
    # in-process run cannot capture it) stay out of stdout, which holds only the tables
    assert "Sampling 2 chains" not in out and "draws/s" not in out
    assert out.rstrip().endswith(f"saved to {path}")
    assert path.is_file()


def test_summary_of_a_saved_fit_prints_the_same_tables(saved_fit, capsys):
    _, fit_out, _, path = saved_fit
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    # everything the fit printed after sampling, from the file alone
    for block in ("Summary", "Variance decomposition", "Diagnostics (pymc, 2 chains x 100"):
        assert block in out
    tables = fit_out[fit_out.index("Summary"):fit_out.index("Diagnostics")]
    assert tables in out
    assert out.startswith("r2d2formula Model: Reaction ~ Days + (Days | Subject)")


def _new_rows(tmp_path):
    new = pd.DataFrame({"Days": [0, 9, 9], "Subject": ["308", "308", "a new subject"],
                        "note": ["a", "b", "c"]})
    path = tmp_path / "new.csv"
    new.to_csv(path, index=False)
    return new, path


def test_predict_writes_the_new_rows_with_their_summary(saved_fit, tmp_path, capsys):
    from r2d2formula import load

    fit_path = saved_fit[3]
    new, new_path = _new_rows(tmp_path)
    out_path = tmp_path / "pred.csv"
    assert main(["predict", str(fit_path), str(new_path), "--output", str(out_path),
                 "--seed", "4"]) == 0
    assert capsys.readouterr().out == ""
    table = pd.read_csv(out_path, dtype={"Subject": str})
    assert list(table.columns) == ["Days", "Subject", "note", "mean", "sd", "hdi_3%", "hdi_97%"]
    pd.testing.assert_frame_equal(table[["Days", "Subject", "note"]], new)
    # the numbers are those of the library on the loaded fit
    expected = load(fit_path).predict(new, random_seed=4, summary=True)
    np.testing.assert_allclose(table[["mean", "sd", "hdi_3%", "hdi_97%"]].to_numpy(),
                               expected[["mean", "sd", "hdi_3%", "hdi_97%"]].to_numpy())
    assert (table["hdi_3%"] < table["mean"]).all() and (table["mean"] < table["hdi_97%"]).all()
    # the new subject is uncertain: its own effect is drawn from the population
    assert table["sd"][2] > 2 * table["sd"][1]


def test_predict_prints_csv_and_honours_kind_and_new_levels(saved_fit, tmp_path, capsys):
    fit_path = saved_fit[3]
    _, new_path = _new_rows(tmp_path)
    assert main(["predict", str(fit_path), str(new_path), "--new-levels", "zero",
                 "--hdi-prob", "0.5"]) == 0
    zero = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(zero.columns)[-4:] == ["mean", "sd", "hdi_25%", "hdi_75%"]
    assert main(["predict", str(fit_path), str(new_path), "--kind", "response",
                 "--new-levels", "zero", "--seed", "2"]) == 0
    response = pd.read_csv(io.StringIO(capsys.readouterr().out))
    # new observations spread more than their mean (sigma is about 25 ms)
    assert (response["sd"] > zero["sd"] + 10).all()
    # a new subject at the population average: as certain as the population mean
    assert zero["sd"][2] < 20


def test_predict_unseen_level_with_new_levels_error(saved_fit, tmp_path, capsys):
    _, new_path = _new_rows(tmp_path)
    assert main(["predict", str(saved_fit[3]), str(new_path), "--new-levels", "error"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("r2d2formula: error: ")
    assert "a new subject" in lines[0] and "Subject" in lines[0]


def test_predict_missing_predictor_column(saved_fit, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"Subject": ["308"]}).to_csv(path, index=False)
    assert main(["predict", str(saved_fit[3]), str(path)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) >= 1 and lines[0].startswith("r2d2formula: error: ")
    assert "Days" in "\n".join(lines)


@pytest.mark.parametrize("command", ["summary", "predict"])
def test_not_a_fit_file(command, tmp_path, capsys):
    _, new_path = _new_rows(tmp_path)
    argv = [command, str(new_path)] + ([str(new_path)] if command == "predict" else [])
    assert main(argv) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("r2d2formula: error: cannot read")


@pytest.mark.parametrize("command", ["summary", "predict"])
def test_missing_fit_file(command, tmp_path, capsys):
    argv = [command, str(tmp_path / "gone.nc")] + (["new.csv"] if command == "predict" else [])
    assert main(argv) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "gone.nc" in lines[0] and "no file" in lines[0]


def test_predict_missing_or_empty_csv(saved_fit, tmp_path, capsys):
    assert main(["predict", str(saved_fit[3]), str(tmp_path / "none.csv")]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "none.csv" in lines[0]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["predict", str(saved_fit[3]), str(empty)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "empty.csv" in lines[0] and "empty" in lines[0]


def test_installed_command_summarises_a_saved_fit(saved_fit):
    exe = shutil.which("r2d2formula")
    if exe is None:
        pytest.skip("the r2d2formula command is not installed (pip install -e .)")
    result = subprocess.run([exe, "summary", str(saved_fit[3])], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Variance decomposition" in result.stdout
    bad = subprocess.run([exe, "summary", "no-such-fit.nc"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "r2d2formula: error: no file 'no-such-fit.nc'; check the path"
