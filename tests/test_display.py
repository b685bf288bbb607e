"""Rich display: Model and Fit as HTML for Jupyter, and the model as LaTeX equations."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.mathtext import MathTextParser  # noqa: E402

from r2d2formula import R2D2, Model, Prior, datasets  # noqa: E402
from r2d2formula.display import (  # noqa: E402
    latex_name,
    model_equations,
    model_html,
    prior_descriptions,
)

_VOID = {"br", "hr", "img", "input", "meta", "link", "col", "wbr"}


class _TagChecker(HTMLParser):
    """Records tags that are closed out of order or never closed."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _check_html(text: str) -> str:
    """Assert well-formed nesting; return the visible text (entities decoded)."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags {checker.stack}"
    return "".join(checker.text)


def _models() -> dict[str, Model]:
    epilepsy = datasets.load("epilepsy")
    diabetes64 = datasets.load("diabetes64")
    offset_data = epilepsy.assign(exposure=np.linspace(1, 3, len(epilepsy)))
    return {
        "gaussian-correlated": Model("Reaction ~ Days + (Days | Subject)",
                                     datasets.load("sleepstudy")),
        "nb-gbp": Model("count ~ zAge + zBase * Trt + (1 | patient)", epilepsy,
                        family="negativebinomial", prior=R2D2(approx="gbp")),
        "poisson-linear-offset": Model("count ~ zAge + offset(log(exposure)) + (1 | patient)",
                                       offset_data, family="poisson",
                                       prior=R2D2(approx="linear")),
        "binomial-exact": Model("surv | trials(density) ~ pred * size + (1 | tank)",
                                datasets.load("reedfrogs"), family="binomial"),
        "bernoulli-probit": Model("pulled_left ~ treatment + (1 | actor) + (1 | block)",
                                  datasets.load("chimpanzees"), family="bernoulli",
                                  link="probit", prior=R2D2(approx="linear")),
        "independent-groups": Model("log_radon ~ floor + (1 | county)", datasets.load("radon"),
                                    variant="R2D2",
                                    priors={"sd": Prior("HalfNormal", sigma=1.0)}),
        "laplace-64": Model("y ~ " + " + ".join(c for c in diabetes64.columns if c != "y"),
                            diabetes64, prior=R2D2(kernel="laplace", autoscale=False)),
        "uncorrelated-slopes": Model("Reaction ~ Days + (Days || Subject)",
                                     datasets.load("sleepstudy")),
        "no-intercept": Model("Reaction ~ 0 + Days + (1 | Subject)",
                              datasets.load("sleepstudy")),
    }


MODELS = _models()


@pytest.fixture(scope="module")
def sleep() -> Model:
    return MODELS["gaussian-correlated"]


# ---------------------------------------------------------------------------------------
# HTML of a model
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_model_html_contains_what_the_model_is(name):
    model = MODELS[name]
    text = model._repr_html_()
    visible = _check_html(text)
    assert model.design.formula in visible
    assert f"<code>{html.escape(model.design.formula)}</code>" in text
    assert model.variant in visible
    assert model.variant_reason in visible
    assert f"{model.family.name} (link: {model.family.link})" in visible
    assert f"{model.design.n_obs} observations" in visible
    for component in model.components.index:
        assert component in visible, component
    for parameter, prior, meaning in prior_descriptions(model):
        assert parameter in visible and prior in visible and meaning in visible
    for parameter, _ in model.priors.table():  # the names print(model) uses
        if parameter.startswith("beta0") and not model.design.common.intercept:
            continue  # listed by priors.table() even when the formula has no intercept
        assert parameter.split(" ")[0].rstrip("*") in visible
    assert "\\begin{aligned}" in visible and "\\end{aligned}" in visible


def test_model_html_names_levels_and_reference(sleep):
    visible = _check_html(sleep._repr_html_())
    assert "Subject (18 levels)" in visible
    assert "Aguilar & Bürkner" in visible


def test_prior_descriptions_cover_every_parameter(sleep):
    names = [row[0] for row in prior_descriptions(sleep)]
    assert names == ["R2", "W", "phi", "b", "sd_Subject", "r_Subject", "cor_Subject", "beta0",
                     "sigma"]
    nb = [row[0] for row in prior_descriptions(MODELS["nb-gbp"])]
    assert "alpha" in nb and "cor_patient" not in nb
    independent = dict((row[0], row[1]) for row in prior_descriptions(MODELS["independent-groups"]))
    assert independent["sd_county"] == "HalfNormal(sigma=1)"


def test_user_strings_are_escaped():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "y": rng.normal(size=40),
        "a<b>&c": rng.normal(size=40),
        "g": np.repeat(["<script>x", "l_2", "l{3}", "l%4"], 10),
    })
    model = Model("y ~ `a<b>&c` + (1 | g)", frame)
    text = model._repr_html_()
    assert "a<b>" not in text and "<script>" not in text
    assert "a&lt;b&gt;&amp;c" in text
    visible = _check_html(text)
    assert "a<b>&c" in visible  # decoded again by the browser
    # the LaTeX inside the HTML escapes '&' twice: for LaTeX (\&) and for HTML (&amp;)
    assert "\\mathrm{a&lt;b&gt;\\&amp;c}" in text


def test_html_sections_open_or_closed_by_size():
    small = model_html(MODELS["gaussian-correlated"])
    assert "<details open><summary><b>Components (3)</b>" in small
    big = model_html(MODELS["laplace-64"])
    assert "<details><summary><b>Components (64)</b>" in big


# ---------------------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------------------


def _unescaped(text: str, char: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


@pytest.mark.parametrize("name", list(MODELS))
def test_latex_is_balanced(name):
    latex = MODELS[name].latex()
    assert latex.startswith("\\begin{align*}\n") and latex.endswith("\n\\end{align*}")
    assert _unescaped(latex, "{") == _unescaped(latex, "}")
    assert latex.count("\\left") == latex.count("\\right")
    assert _unescaped(latex, "(") - latex.count("\\left(") == \
        _unescaped(latex, ")") - latex.count("\\right)")
    depth = 0
    for ch in re.sub(r"\\[{}]", "", latex):  # braces never close before they open
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    body = latex.split("\n")[1:-1]
    assert all(line.endswith(" \\\\") for line in body[:-1])
    for line in model_equations(MODELS[name]):
        assert _unescaped(line, "&") == 1, line  # one alignment point per line
        assert "\n" not in line


@pytest.mark.parametrize("name", list(MODELS))
def test_each_equation_parses_in_mathtext(name):
    parser = MathTextParser("path")
    for line in model_equations(MODELS[name]):
        parser.parse("$" + line.replace("&", "") + "$")


def test_latex_writes_the_r2d2m2_model(sleep):
    latex = sleep.latex()
    for piece in [
        r"\mathrm{Reaction}_i &\sim \mathcal{N}(\eta_i, \sigma^2), \quad i = 1, \dots, 180",
        r"\eta_i &= \beta_0 + b_{\mathrm{Days}} (x_{i,\mathrm{Days}} - \bar{x}_{\mathrm{Days}})",
        r"r_{\mathrm{1|Subject}}[\mathrm{Subject}_i]",
        r"r_{\mathrm{Days|Subject}}[\mathrm{Subject}_i]\, z_{i,\mathrm{Days}}",
        r"R^2 &\sim \operatorname{Beta}(1, 1)",
        r"W &= \sigma^2 \frac{R^2}{1 - R^2}",
        r"\varphi &\sim \operatorname{Dirichlet}(0.5, 0.5, 0.5)",
        r"b_j &\sim \mathcal{N}\left(0, \frac{\varphi_j W}{s_j^2}\right)",
        r"\mathrm{sd}_k &= \frac{\sqrt{\varphi_k W}}{s_k}",
        r"\Omega_{\mathrm{Subject}} &\sim \operatorname{LKJ}(1)",
        r"\mathcal{N}_{2}\left(0, \operatorname{diag}(",
        r"\sigma &\sim \operatorname{HalfStudentT}(\nu = 3, \sigma = ",
    ]:
        assert piece in latex, piece
    intercept = sleep.priors.intercept.params
    assert (rf"\beta_0 &\sim \mathcal{{N}}({intercept['mu']:.4g}, "
            rf"{intercept['sigma']:.4g}^2)") in latex


@pytest.mark.parametrize(("name", "pieces", "absent"), [
    ("nb-gbp", [r"d^* \left(\frac{U}{1 - U}\right)^{1/c^*}", r"\frac{1 + \alpha}{\alpha}",
                r"\operatorname{NegBinomial}(\mu_i, \alpha)",
                r"\alpha &\sim \operatorname{LogNormal}(\mu = 1, \sigma = 2)"],
     [r"W &= \sigma^2"]),
    ("poisson-linear-offset", [r"W &= s^2(\beta_0 + 0.6", r"s^2(t) = e^{-t}", "+ o_i"],
     [r"g^{-1}"]),
    ("binomial-exact", [r"W &= g^{-1}(R^2)", r"\operatorname{Binomial}(n_i, \mu_i)",
                        r"\operatorname{logit}^{-1}(\eta_i)", r"\tilde{n} = "],
     [r"\operatorname{LKJ}"]),
    ("bernoulli-probit", [r"\Phi(\eta_i)", r"\frac{\sigma^2(\mu(t))}{\mu'(t)^2}",
                          r"W &= s^2(\beta_0) \frac{R^2}{1 - R^2}"],
     []),
    ("independent-groups", [r"\mathrm{sd}_k &\sim \operatorname{HalfNormal}(\sigma = 1)",
                            r"\varphi &= 1"],
     [r"\frac{\sqrt{\varphi_k W}}{s_k}"]),
    ("laplace-64", [r"\operatorname{Laplace}\left(0, \frac{\sqrt{\varphi_j W / 2}}{s_j}\right)",
                    r"j = 1, \dots, 64", "s_j = 1", r"\sum_{j=1}^{64}",
                    r"\operatorname{Dirichlet}(0.5, \dots, 0.5), \quad K = 64"],
     []),
    ("uncorrelated-slopes", [r"r_{\mathrm{Days|Subject}}[\ell] &\sim \mathcal{N}(0, "
                             r"\mathrm{sd}_{\mathrm{Days|Subject}}^2)"],
     [r"\operatorname{LKJ}"]),
    ("no-intercept", [r"\eta_i &= b_{\mathrm{Days}} x_{i,\mathrm{Days}}"],
     [r"\beta_0 &\sim", r"\mathrm{Intercept} &="]),
])
def test_latex_by_family_and_method(name, pieces, absent):
    latex = MODELS[name].latex()
    for piece in pieces:
        assert piece in latex, piece
    for piece in absent:
        assert piece not in latex, piece


def test_latex_aligned_environment(sleep):
    text = sleep.latex("aligned")
    assert text.startswith("$$\\begin{aligned}\n") and text.endswith("\\end{aligned}$$")
    with pytest.raises(ValueError, match="align"):
        sleep.latex("equation")


def test_latex_name_escapes_special_characters():
    name = "a_b {c} 50% #1 $x ^y ~z \"q\" back\\slash"
    escaped = latex_name(name)
    assert escaped.startswith("\\mathrm{") and escaped.endswith("}")
    for raw in ("_", "%", "#", "$"):
        assert f"\\{raw}" in escaped
    assert "\\{c\\}" in escaped and "\\backslash{}" in escaped and "''q''" in escaped
    MathTextParser("path").parse(f"${escaped}$")


@pytest.mark.skipif(shutil.which("latex") is None, reason="no LaTeX installation")
def test_latex_compiles(tmp_path, sleep):
    document = ("\\documentclass{article}\\usepackage{amsmath}\\begin{document}\n"
                + sleep.latex() + "\n\\end{document}\n")
    (tmp_path / "model.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(["latex", "-interaction=nonstopmode", "-halt-on-error",
                             "model.tex"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


# ---------------------------------------------------------------------------------------
# plain text
# ---------------------------------------------------------------------------------------


def test_text_repr_keeps_its_lines(sleep):
    text = repr(sleep)
    assert text.startswith("r2d2formula Model: Reaction ~ Days + (Days | Subject)")
    assert "variant: R2D2M2, because" in text
    assert "grouping factors: Subject (18 levels)" in text
    assert "1|Subject" in text and "Days|Subject" in text


# ---------------------------------------------------------------------------------------
# fits
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_fit():
    """Few draws on purpose: the diagnostics then report a too-small ESS."""
    model = Model("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=60, tune=100, chains=2, sampler="pymc", progressbar=False,
                         random_seed=3)


def test_fit_html_shows_diagnostics_and_a_warning(quick_fit):
    text = quick_fit._repr_html_()
    visible = _check_html(text)
    diag = quick_fit.diagnostics()
    assert diag["problems"], "60 draws should give a too-small ESS"
    assert "Sampler diagnostics" in visible
    assert "pymc: 2 chains x 60 draws" in visible
    assert f"{diag['max_rhat']:.4g}" in visible
    assert f"{diag['min_ess_bulk']:.0f} / {diag['min_ess_tail']:.0f}" in visible
    assert "Warning: the sampler reports problems" in visible
    for problem in diag["problems"]:
        assert problem in visible
    assert "draws=" in visible  # the remedy
    assert "No sampling problems" not in visible


def test_fit_html_has_decomposition_and_the_model(quick_fit):
    visible = _check_html(quick_fit._repr_html_())
    assert "Variance decomposition" in visible and "R2: posterior mean" in visible
    for component in quick_fit.model.components.index:
        assert component in visible
    assert quick_fit.model.variant_reason in visible
    assert "\\operatorname{Beta}" in visible


def test_fit_text_warns_with_remedy(quick_fit):
    text = repr(quick_fit)
    assert "fitted with pymc: 2 chains x 60 draws" in text
    assert "WARNING: min effective sample size" in text


@pytest.mark.slow
def test_fit_html_without_problems():
    model = Model("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))
    fit = model.fit(draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
    if fit.diagnostics()["problems"]:
        pytest.skip("this run had sampling problems; the check needs a clean run")
    visible = _check_html(fit._repr_html_())
    assert "No sampling problems" in visible and "Warning" not in visible
