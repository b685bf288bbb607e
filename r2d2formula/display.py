r"""Descriptions of models and fits: plain text (``repr``, the CLI), HTML (Jupyter) and LaTeX.

The LaTeX writes the model out as a paper or a lecture would: the likelihood, the linear
predictor with its group terms, and every prior with its numbers (SPEC section 2). Each line
of :func:`model_equations` is one self-contained equation that LaTeX, MathJax and
Matplotlib's mathtext all accept; :func:`model_latex` joins them in an ``align*``
environment.

Examples
--------
>>> from r2d2formula import Model, datasets
>>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
>>> print(model_equations(m)[0])
\mathrm{Reaction}_i &\sim \mathcal{N}(\eta_i, \sigma^2), \quad i = 1, \dots, 180
>>> "\\operatorname{LKJ}(1)" in m.latex()
True
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from r2d2formula.model import Model
    from r2d2formula.priors.spec import Prior
    from r2d2formula.results import Fit

__all__ = [
    "model_text",
    "fit_text",
    "model_html",
    "fit_html",
    "model_equations",
    "model_latex",
    "prior_descriptions",
    "latex_name",
]

# Above this many terms, equations use sums and index sets instead of naming every column.
_MAX_NAMED = 6

# ---------------------------------------------------------------------------------------
# plain text
# ---------------------------------------------------------------------------------------


def model_text(model: Model) -> str:
    """Formula, family, variant with its reason, components and priors, as text."""
    design = model.design
    lines = [
        f"r2d2formula Model: {design.formula}",
        f"  family: {model.family.name} (link: {model.family.link})",
        f"  observations: {design.n_obs}"
        + (f" ({design.n_dropped} rows with missing values dropped)" if design.n_dropped else ""),
    ]
    if design.factors:
        lines.append("  grouping factors: " + ", ".join(
            f"{name} ({len(gf.levels)} levels)" for name, gf in design.factors.items()))
    lines += [
        f"  variant: {model.variant}, because {model.variant_reason}",
        f"  R2 -> W: {model.approx}" + (
            " (GBP a*, b*, c*, d* = " + ", ".join(f"{v:.4g}" for v in model.priors.gbp_params)
            + ")" if model.priors.gbp_params else ""),
        "  components:",
    ]
    for name, row in model.components.iterrows():
        conc = "" if pd.isna(row["concentration"]) else f"concentration {row['concentration']:g}"
        where = "R2D2" if row["in_r2d2"] else "independent prior"
        lines.append(f"    {name:<24} {row['kind']:<7} scale {row['scale']:<10.4g} {conc} [{where}]")
    lines.append("  priors:")
    for parameter, prior in model.priors.table():
        lines.append(f"    {parameter:<28} {prior}")
    return "\n".join(lines)


def fit_text(fit: Fit) -> str:
    """The model description plus sampler diagnostics."""
    diag = fit.diagnostics()
    stats = fit.idata.posterior.sizes
    lines = [
        model_text(fit.model),
        f"  fitted with {fit.sampler}: {stats.get('chain')} chains x {stats.get('draw')} draws",
        f"  divergences: {diag['divergences']}, max R-hat: {diag['max_rhat']:.3f}, "
        f"min ESS (bulk/tail): {diag['min_ess_bulk']:.0f}/{diag['min_ess_tail']:.0f}",
    ]
    for problem in diag["problems"]:
        lines.append(f"  WARNING: {problem}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# LaTeX
# ---------------------------------------------------------------------------------------

# Characters that are special in LaTeX math, with a replacement that LaTeX, MathJax and
# (except for '&') mathtext all read.
_LATEX_ESCAPES = {
    "\\": r"\backslash{}", "_": r"\_", "{": r"\{", "}": r"\}", "%": r"\%", "#": r"\#",
    "&": r"\&", "$": r"\$", "^": r"\wedge{}", "~": r"\sim{}", '"': "''", " ": r"\ ",
}


def latex_name(text: str) -> str:
    r"""A column, factor or component name as upright LaTeX, special characters escaped.

    Examples
    --------
    >>> latex_name("1|Subject")
    '\\mathrm{1|Subject}'
    >>> latex_name("log_dose [mg]")
    '\\mathrm{log\\_dose\\ [mg]}'
    """
    return r"\mathrm{" + "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text)) + "}"


def _num(value: float) -> str:
    """A number in LaTeX, 4 significant digits, powers of ten written out."""
    text = f"{float(value):.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return rf"{mantissa} \times 10^{{{int(exponent)}}}"
    return text


_PARAM_SYMBOLS = {"mu": r"\mu", "sigma": r"\sigma", "nu": r"\nu", "alpha": r"\alpha",
                  "beta": r"\beta", "lam": r"\lambda", "lower": r"\mathrm{lower}",
                  "upper": r"\mathrm{upper}"}


def _prior_latex(prior: Prior) -> str:
    """A :class:`Prior` in LaTeX: Normal as N(mean, sd^2), others with PyMC's parameter names."""
    params = prior.params
    if prior.distribution == "Normal":
        return (rf"\mathcal{{N}}({_num(params.get('mu', 0.0))}, "
                rf"{_num(params.get('sigma', 1.0))}^2)")
    args = ", ".join(f"{_PARAM_SYMBOLS.get(k, latex_name(k))} = {_num(v)}"
                     for k, v in params.items())
    return rf"\operatorname{{{prior.distribution}}}({args})"


def _mean_function(link: str) -> str:
    return {"identity": r"\eta", "logit": r"\operatorname{logit}^{-1}(\eta)",
            "probit": r"\Phi(\eta)", "log": r"e^{\eta}"}[link]


def _variance_function(model: Model) -> str:
    name = model.family.name
    if name == "gaussian":
        return r"\sigma^2"
    if name == "bernoulli":
        return r"\mu(1 - \mu)"
    if name == "binomial":
        return rf"\mu(1 - \mu) / \tilde{{n}}, \quad \tilde{{n}} = {_num(model.priors.map_trials)}"
    if name == "poisson":
        return r"\mu"
    return r"\mu + \mu^2 / \alpha"


def _likelihood_line(model: Model) -> str:
    design, family = model.design, model.family
    y = latex_name(design.response.name) + "_i"
    n = rf"\quad i = 1, \dots, {design.n_obs}"
    mean = _mean_function(family.link).replace(r"\eta", r"\eta_i")
    if family.name == "gaussian":
        return rf"{y} &\sim \mathcal{{N}}(\eta_i, \sigma^2), {n}"
    if family.name == "bernoulli":
        return rf"{y} &\sim \operatorname{{Bernoulli}}(\mu_i), \quad \mu_i = {mean}, {n}"
    if family.name == "binomial":
        return (rf"{y} &\sim \operatorname{{Binomial}}(n_i, \mu_i), \quad \mu_i = {mean}, "
                rf"\ n_i \text{{ trials}}, {n}")
    if family.name == "poisson":
        return rf"{y} &\sim \operatorname{{Poisson}}(\mu_i), \quad \mu_i = {mean}, {n}"
    return (rf"{y} &\sim \operatorname{{NegBinomial}}(\mu_i, \alpha), \quad \mu_i = {mean}, "
            rf"\ \operatorname{{Var}}(y_i) = \mu_i + \mu_i^2 / \alpha, {n}")


def _linear_predictor_lines(model: Model) -> list[str]:
    design = model.design
    common = design.common
    terms: list[str] = []
    if common.intercept:
        terms.append(r"\beta_0")
    if design.offset is not None:
        terms.append("o_i")
    p = len(common.labels)
    if p > _MAX_NAMED:
        terms.append(rf"\sum_{{j=1}}^{{{p}}} b_j (x_{{ij}} - \bar{{x}}_j)" if common.intercept
                     else rf"\sum_{{j=1}}^{{{p}}} b_j x_{{ij}}")
    else:
        for label in common.labels:
            name = latex_name(label)
            terms.append(rf"b_{{{name}}} (x_{{i,{name}}} - \bar{{x}}_{{{name}}})"
                         if common.intercept else rf"b_{{{name}}} x_{{i,{name}}}")
    group = [(term.factor, label) for term in design.group_terms for label in term.labels]
    if len(group) > _MAX_NAMED:
        terms.append(r"\sum_{k} r_k[\ell_k(i)]\, z_{ik}")
    else:
        for factor, label in group:
            r = rf"r_{{{latex_name(f'{label}|{factor}')}}}[{latex_name(factor)}_i]"
            terms.append(r if label == "1" else rf"{r}\, z_{{i,{latex_name(label)}}}")
    if not terms:
        terms = ["0"]
    lines = []
    for start in range(0, len(terms), 3):
        chunk = " + ".join(terms[start:start + 3])
        lines.append(rf"\eta_i &= {chunk}" if start == 0 else rf"&\quad + {chunk}")
    return lines


def _w_lines(model: Model) -> list[str]:
    """How W follows from R2 (SPEC section 2: exact, gbp or linear)."""
    family, pri = model.family, model.priors
    a, b = pri.r2_beta
    beta = rf"\operatorname{{Beta}}({_num(a)}, {_num(b)})"
    if family.name == "gaussian":
        return [rf"R^2 &\sim {beta}", r"W &= \sigma^2 \frac{R^2}{1 - R^2}"]
    location = r"\beta_0" if model.design.common.intercept else "0"
    if pri.offset_mean:
        location += rf" + {_num(pri.offset_mean)}"
    ratio = (r"\frac{\operatorname{Var}[\mu(\eta)]}"
             r"{\operatorname{Var}[\mu(\eta)] + \operatorname{E}[\sigma^2(\eta)]}")
    if family.name == "negativebinomial":  # measured relative to its supremum alpha/(1+alpha)
        ratio = r"\frac{1 + \alpha}{\alpha} " + ratio
    functions = (rf"&\quad \mu(\eta) = {_mean_function(family.link)}, "
                 rf"\quad \sigma^2(\eta) = {_variance_function(model)}")
    g_line = rf"g(W) &= {ratio}, \quad \eta \sim \mathcal{{N}}({location}, W)"
    if pri.approx == "exact":
        return [rf"R^2 &\sim {beta}",
                r"W &= g^{-1}(R^2) \quad \text{(exact: } R^2 \text{ is exactly Beta)}",
                g_line, functions]
    if pri.approx == "gbp" and pri.gbp_params is not None:
        ga, gb, gc, gd = pri.gbp_params
        return [
            rf"U &\sim \operatorname{{Beta}}(a^*, b^*) = \operatorname{{Beta}}({_num(ga)}, "
            rf"{_num(gb)})",
            rf"W &= d^* \left(\frac{{U}}{{1 - U}}\right)^{{1/c^*}}, \quad c^* = {_num(gc)}, "
            rf"\ d^* = {_num(gd)} \quad \text{{(generalized beta prime)}}",
            rf"R^2 &= g(W) \approx {beta} \quad \text{{at }} \beta_0 = "
            rf"{_num(pri.intercept_plugin)}",
            g_line, functions,
        ]
    s2 = {  # s^2(t) = sigma^2(mu(t)) / mu'(t)^2, the delta method at t
        ("poisson", "log"): r"e^{-t}",
        ("negativebinomial", "log"): r"e^{-t} + 1 / \alpha",
        ("bernoulli", "logit"): r"\frac{1}{\mu(t)(1 - \mu(t))}",
        ("binomial", "logit"): rf"\frac{{1}}{{{_num(pri.map_trials)}\, \mu(t)(1 - \mu(t))}}",
    }.get((family.name, family.link), r"\frac{\sigma^2(\mu(t))}{\mu'(t)^2}")
    return [rf"R^2 &\sim {beta}",
            rf"W &= s^2({location}) \frac{{R^2}}{{1 - R^2}}, \quad s^2(t) = {s2} "
            r"\quad \text{(linear approximation)}",
            functions]


def _index_set(names: list[str], symbol: str) -> str:
    if len(names) > _MAX_NAMED:
        return rf"{symbol} = 1, \dots, {len(names)}"
    return rf"{symbol} \in \{{" + ", ".join(latex_name(n) for n in names) + r"\}"


def model_equations(model: Model) -> list[str]:
    r"""The model as a list of LaTeX equations, one per line, each with one ``&`` to align on.

    The lines are: the likelihood, the linear predictor (population columns centered at their
    means, group effects indexed by level), R2 and how W follows from it, the Dirichlet on
    phi, the coefficients and group SDs as functions of phi and W, the group effects (LKJ
    for correlated blocks), and the priors of the intercept and the auxiliary parameters.
    :math:`\mathcal{N}(m, v)` has mean m and *variance* v.

    Parameters
    ----------
    model : Model

    Returns
    -------
    list of str
        Each line is valid inside ``align*``; without its ``&`` it is a valid inline formula
        for LaTeX, MathJax and Matplotlib's mathtext.
    """
    design, pri = model.design, model.priors
    lines = [_likelihood_line(model), *_linear_predictor_lines(model)]
    if design.common.intercept and design.common.labels:
        lines.append(r"\mathrm{Intercept} &= \beta_0 - \sum_j b_j \bar{x}_j "
                     r"\quad \text{(original scale)}")
    lines += _w_lines(model)

    components = list(pri.variant.components)
    conc = pri.concentrations
    if len(components) == 1:
        lines.append(rf"\varphi &= 1 \quad \text{{(one component: }} {latex_name(components[0])}"
                     r"\text{)}")
    elif len(set(conc)) == 1 and len(conc) > 8:
        lines.append(rf"\varphi &\sim \operatorname{{Dirichlet}}({_num(conc[0])}, \dots, "
                     rf"{_num(conc[0])}), \quad K = {len(conc)} \text{{ components}}")
    elif len(conc) > 8:
        lines.append(rf"\varphi &\sim \operatorname{{Dirichlet}}(c_1, \dots, c_{{{len(conc)}}})"
                     r" \quad \text{(concentrations per component)}")
    else:
        lines.append(r"\varphi &\sim \operatorname{Dirichlet}("
                     + ", ".join(_num(c) for c in conc) + ")")

    autoscale = pri.r2d2.autoscale
    labels = list(design.common.labels)
    if labels:
        scale = r"s_j = \operatorname{sd}(x_j)" if autoscale else r"s_j = 1"
        if pri.r2d2.kernel == "laplace":
            dist = r"\operatorname{Laplace}\left(0, \frac{\sqrt{\varphi_j W / 2}}{s_j}\right)"
        else:
            dist = r"\mathcal{N}\left(0, \frac{\varphi_j W}{s_j^2}\right)"
        lines.append(rf"b_j &\sim {dist}, \quad {_index_set(labels, 'j')}, \quad {scale}")
    groups = [name for name in design.component_names if name not in design.common.labels]
    if groups:
        if pri.variant.independent_groups:
            lines.append(rf"\mathrm{{sd}}_k &\sim {_prior_latex(pri.group_sd)}, \quad "
                         rf"{_index_set(groups, 'k')} \quad \text{{(outside the R2D2 prior)}}")
        else:
            scale = (r"s_k = 1 \text{ for intercepts, else } \operatorname{sd}(z_k)"
                     if autoscale else r"s_k = 1")
            lines.append(rf"\mathrm{{sd}}_k &= \frac{{\sqrt{{\varphi_k W}}}}{{s_k}}, \quad "
                         rf"{_index_set(groups, 'k')}, \quad {scale}")
        lines += _group_effect_lines(model)
    if design.common.intercept:
        lines.append(rf"\beta_0 &\sim {_prior_latex(pri.intercept)} "
                     r"\quad \text{(centered intercept, link scale)}")
    symbols = {"sigma": r"\sigma", "alpha": r"\alpha"}
    for name, prior in pri.aux.items():
        lines.append(rf"{symbols.get(name, latex_name(name))} &\sim {_prior_latex(prior)}")
    return lines


def _group_effect_lines(model: Model) -> list[str]:
    design = model.design
    blocks = design.group_terms
    lines: list[str] = []
    if sum(len(t.labels) for t in blocks) > _MAX_NAMED and not any(t.correlated for t in blocks):
        return [r"r_k[\ell] &\sim \mathcal{N}(0, \mathrm{sd}_k^2), \quad \ell = 1, \dots, L_k"]
    for factor in design.factors:
        n_levels = len(design.factors[factor].levels)
        levels = rf"\quad \ell = 1, \dots, {n_levels}"
        correlated = [t for t in blocks if t.factor == factor and t.correlated]
        for term in (t for t in blocks if t.factor == factor):
            names = [f"{label}|{factor}" for label in term.labels]
            if not term.correlated:
                comp = latex_name(names[0])
                lines.append(rf"r_{{{comp}}}[\ell] &\sim \mathcal{{N}}(0, \mathrm{{sd}}_{{{comp}}}^2),"
                             rf" {levels}")
                continue
            omega = rf"\Omega_{{{latex_name(factor)}}}"
            if len(correlated) > 1:
                omega += rf"^{{({correlated.index(term) + 1})}}"
            vector = ", ".join(rf"r_{{{latex_name(n)}}}[\ell]" for n in names)
            sd = r"\operatorname{diag}(" + ", ".join(
                rf"\mathrm{{sd}}_{{{latex_name(n)}}}" for n in names) + ")"
            if len(names) > 3:
                sd = rf"\operatorname{{diag}}(\mathrm{{sd}}_{{{latex_name(factor)}}})"
            lines.append(rf"({vector}) &\sim \mathcal{{N}}_{{{len(names)}}}\left(0, {sd}\, "
                         rf"{omega}\, {sd}\right), {levels}")
            lines.append(rf"{omega} &\sim \operatorname{{LKJ}}(1)")
    return lines


def model_latex(model: Model, environment: Literal["align*", "aligned"] = "align*") -> str:
    r"""The model as one LaTeX block.

    Parameters
    ----------
    model : Model
    environment : {"align*", "aligned"}
        ``"align*"`` gives ``\begin{align*} ... \end{align*}`` for a LaTeX document (amsmath)
        or a Markdown cell; ``"aligned"`` gives ``$$\begin{aligned} ... \end{aligned}$$``, for
        places that need math delimiters.

    Returns
    -------
    str
    """
    if environment not in ("align*", "aligned"):
        raise ValueError(f"environment must be 'align*' or 'aligned', got {environment!r}")
    body = " \\\\\n".join(model_equations(model))
    if environment == "aligned":
        return f"$$\\begin{{aligned}}\n{body}\n\\end{{aligned}}$$"
    return f"\\begin{{align*}}\n{body}\n\\end{{align*}}"


# ---------------------------------------------------------------------------------------
# priors in words
# ---------------------------------------------------------------------------------------


def prior_descriptions(model: Model) -> list[tuple[str, str, str]]:
    """Every prior of the model in words: (parameter, distribution, what it means).

    Examples
    --------
    >>> from r2d2formula import Model, datasets
    >>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    >>> [row[0] for row in prior_descriptions(m)]
    ['R2', 'W', 'phi', 'b', 'sd_Subject', 'r_Subject', 'cor_Subject', 'beta0', 'sigma']
    """
    design, family, pri = model.design, model.family, model.priors
    r2d2 = pri.r2d2
    lo, hi = r2d2.r2_interval(0.9)
    a, b = pri.r2_beta
    r2_text = (f"the share of the response variance the linear predictor explains; prior mean "
               f"{a / (a + b):.3g}, 90% of the prior in [{lo:.3g}, {hi:.3g}]")
    if family.name == "negativebinomial":
        r2_text += "; measured relative to its supremum alpha / (1 + alpha)"
    w_prior = {
        "exact": "sigma^2 * R2 / (1 - R2)" if family.name == "gaussian"
        else "the exact inverse of R2(W) at the current beta0",
        "gbp": "generalized beta prime: d* (U / (1 - U))^(1/c*), U ~ Beta(a*, b*)",
        "linear": "s2(beta0) * R2 / (1 - R2) (delta-method approximation)",
    }[pri.approx]
    rows = [
        ("R2", f"Beta({a:.4g}, {b:.4g})" + (" (implied by W, approximately)"
                                            if pri.approx == "gbp" else ""), r2_text),
        ("W", w_prior, "total prior variance of the linear predictor, a function of R2"),
    ]
    conc = pri.concentrations
    conc_text = f"{conc[0]:g} each" if len(set(conc)) == 1 else "per component"
    rows.append((
        "phi", f"Dirichlet({conc_text}) over {len(conc)} components",
        "how the explained variance splits over the components (the shares sum to 1); "
        "concentrations below 1 favour a few large components",
    ))
    scale = "s_j = sd of column j" if r2d2.autoscale else "s_j = 1 (autoscale=False)"
    if design.common.labels:
        kernel = ("Laplace(0, sqrt(phi_j W / 2) / s_j)" if r2d2.kernel == "laplace"
                  else "Normal(0, sd = sqrt(phi_j W) / s_j)")
        rows.append(("b", kernel, f"population-level coefficients, one per column "
                     f"({len(design.common.labels)}); {scale}"))
    for factor, gf in design.factors.items():
        labels = ", ".join(design.factor_labels(factor))
        if pri.variant.independent_groups:
            rows.append((f"sd_{factor}", pri.group_sd.describe(),
                         f"group-level standard deviations of {labels}, outside the R2D2 prior"))
        else:
            rows.append((f"sd_{factor}", "sqrt(phi_k W) / s_k",
                         f"group-level standard deviations of {labels} (s_k = 1 for "
                         "intercepts, the column sd for slopes)"))
        correlated = any(t.correlated for t in design.group_terms if t.factor == factor)
        rows.append((f"r_{factor}",
                     "MvNormal(0, diag(sd) Omega diag(sd))" if correlated
                     else "Normal(0, sd_k) per level",
                     f"group-level effects of the {len(gf.levels)} levels of {factor}"))
        if correlated:
            rows.append((f"cor_{factor}", "LKJ(eta=1)",
                         f"correlations of the effects within a '|' block of {factor}; "
                         "eta=1 is uniform over correlation matrices"))
    if design.common.intercept:
        rows.append(("beta0", pri.intercept.describe(),
                     "intercept of the centered design on the link scale (the reported "
                     "Intercept is on the original scale)"))
    meaning = {"sigma": "residual standard deviation",
               "alpha": "negative binomial dispersion: variance mu + mu^2 / alpha"}
    for name, prior in pri.aux.items():
        rows.append((name, prior.describe(), meaning.get(name, "auxiliary parameter")))
    return rows


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------

_STYLE_TABLE = 'style="border-collapse: collapse; margin: 0.3em 0; font-size: 0.9em"'
_STYLE_CELL = 'style="text-align: left"'


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _table(headers: list[str], rows: list[list[object]], *, index: bool = True) -> str:
    """An HTML table, every cell escaped; the first column in bold when ``index``."""
    head = "".join(f"<th {_STYLE_CELL}>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            text = _e(_fmt(cell))
            tag = "th" if index and j == 0 else "td"
            cells.append(f"<{tag} {_STYLE_CELL}>{text}</{tag}>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table {_STYLE_TABLE}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _section(title: str, content: str, *, open_: bool = True) -> str:
    return (f"<details{' open' if open_ else ''}><summary><b>{_e(title)}</b></summary>"
            f"{content}</details>")


def _model_facts(model: Model) -> str:
    design = model.design
    data = f"{design.n_obs} observations"
    if design.n_dropped:
        data += f" ({design.n_dropped} rows with missing values dropped)"
    data += f"; {len(design.common.labels)} population-level columns"
    if design.factors:
        data += "; grouping factors: " + ", ".join(
            f"{name} ({len(gf.levels)} levels)" for name, gf in design.factors.items())
    approx = model.approx
    if model.family.name == "gaussian":
        approx += " (W = sigma^2 R2 / (1 - R2))"
    rows = [
        ("formula", f"<code>{_e(design.formula)}</code>"),
        ("family", f"{_e(model.family.name)} (link: {_e(model.family.link)})"),
        ("data", _e(data)),
        ("variant", f"<b>{_e(model.variant)}</b>, because {_e(model.variant_reason)}"
                    f"<br><small>{_e(model.priors.variant.reference)}</small>"),
        ("R2 \u2192 W", _e(approx)),
    ]
    body = "".join(f"<tr><th {_STYLE_CELL}>{_e(k)}</th><td {_STYLE_CELL}>{v}</td></tr>"
                   for k, v in rows)
    return f"<table {_STYLE_TABLE}>{body}</table>"


def _components_html(model: Model) -> str:
    table = model.components
    headers = ["component", "kind", "term", "factor", "scale s", "levels", "concentration",
               "in R2D2"]
    rows = [[name, row["kind"], row["term"], row["factor"], row["scale"], row["n_levels"],
             row["concentration"], bool(row["in_r2d2"])] for name, row in table.iterrows()]
    return _table(headers, rows)


def model_html(model: Model, *, heading: bool = True) -> str:
    """The model as HTML for Jupyter: facts, components, priors in words and as equations.

    User-supplied text (formula, column and level names) is escaped; the equations are
    ``$$\\begin{aligned} ... \\end{aligned}$$`` for Jupyter's MathJax.

    Examples
    --------
    >>> from r2d2formula import Model, datasets
    >>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    >>> text = model_html(m)
    >>> "R2D2M2" in text and "1|Subject" in text and "\\\\operatorname{Beta}" in text
    True
    """
    n_comp = len(model.components)
    parts = ['<div class="r2d2formula-model">']
    if heading:
        parts.append("<h4 style=\"margin: 0.2em 0\">r2d2formula Model</h4>")
    parts.append(_model_facts(model))
    parts.append(_section(f"Components ({n_comp})", _components_html(model),
                          open_=n_comp <= 20))
    priors = _table(["parameter", "prior", "meaning"],
                    [list(row) for row in prior_descriptions(model)])
    parts.append(_section("Priors", priors))
    equations = (f'<div style="overflow-x: auto">{_e(model_latex(model, "aligned"))}</div>'
                 '<p><small>N(m, v) has mean m and variance v.</small></p>')
    parts.append(_section("The model", equations))
    parts.append("</div>")
    return "\n".join(parts)


def _diagnostics_html(fit: Fit) -> str:
    diag = fit.diagnostics()
    sizes = fit.idata.posterior.sizes
    rows = [
        ["sampler", f"{fit.sampler}: {sizes.get('chain')} chains x {sizes.get('draw')} draws"],
        ["divergences", diag["divergences"]],
        ["max R-hat", diag["max_rhat"]],
        ["min ESS (bulk / tail)", f"{diag['min_ess_bulk']:.0f} / {diag['min_ess_tail']:.0f}"],
    ]
    if diag["treedepth_saturated"] is not None:
        rows.append(["draws at max tree depth", f"{diag['treedepth_saturated']:.1%}"])
    table = _table(["diagnostic", "value"], rows)
    if diag["problems"]:
        items = "".join(f"<li>{_e(p)}</li>" for p in diag["problems"])
        status = ('<div class="r2d2formula-warning" style="border-left: 4px solid #d9822b; '
                  'padding: 0.2em 0.8em; margin: 0.3em 0">'
                  "<b>\u26a0 Warning: the sampler reports problems; do not trust the results "
                  f"until they are fixed.</b><ul>{items}</ul></div>")
    else:
        status = ('<div class="r2d2formula-ok" style="border-left: 4px solid #2b8a3e; '
                  'padding: 0.2em 0.8em; margin: 0.3em 0">\u2713 No sampling problems: no '
                  "divergences, R-hat at most 1.01 and at least 400 effective draws.</div>")
    return table + status


def fit_html(fit: Fit) -> str:
    """The fit as HTML for Jupyter: diagnostics (with a warning and remedies when they are
    bad), R2 and the variance decomposition, then the model (see :func:`model_html`)."""
    model = fit.model
    parts = ['<div class="r2d2formula-fit">',
             "<h4 style=\"margin: 0.2em 0\">r2d2formula Fit</h4>",
             f"<p><code>{_e(model.design.formula)}</code>: <b>{_e(model.variant)}</b>, "
             f"{_e(model.family.name)} family</p>",
             _section("Sampler diagnostics", _diagnostics_html(fit))]
    r2 = fit.idata.posterior["R2"].values.ravel()
    lo, hi = _hdi94(r2)
    decomposition = fit.variance_decomposition()
    cols = [c for c in decomposition.columns if c.startswith("phi_") and "R2" not in c
            and c != "phi_sd"]
    rows = [[name, *[row[c] for c in cols], row["phi_R2_mean"]]
            for name, row in decomposition.iterrows()]
    content = (f"<p>R2: posterior mean {r2.mean():.3g}, 94% HDI [{lo:.3g}, {hi:.3g}]</p>"
               + _table(["component", *cols, "phi_R2_mean"], rows)
               + "<p><small>phi: share of the explained variance; phi_R2: share of the total "
                 "variance.</small></p>")
    parts.append(_section("Variance decomposition", content))
    parts.append(_section("Model", model_html(model, heading=False), open_=False))
    parts.append("</div>")
    return "\n".join(parts)


def _hdi94(values: np.ndarray) -> tuple[float, float]:
    import arviz as az

    interval = az.hdi(np.asarray(values), hdi_prob=0.94)
    return float(interval[0]), float(interval[1])
