"""A direct PyMC implementation of the R2D2M2 prior, written from SPEC.md alone.

It shares no code with r2d2formula (and must never import it): the design is built here with
pandas and NumPy, the R2 -> W maps are written out here, and the model is one plain
``pm.Model``. Agreement of its posterior with the library's is evidence that both implement
the same model (SPEC section 5, "Agreement").

Model (SPEC section 2), population columns X (n x p, centered), group terms with design
columns Z and level codes, components ordered as population columns then group terms::

    R2    ~ Beta(a, b)
    phi   ~ Dirichlet(c)
    W     = sigma^2 R2 / (1 - R2)                          gaussian
          = R2 -> W of the GLM (exact map), poisson        see below
    b_j   = z_j sqrt(phi_j W) / s_j                        z_j ~ N(0, 1)
    sd_k  = sqrt(phi_k W) / s_k
    r     = (diag(sd) L z)' per correlated block            L ~ LKJCholesky(eta=1)
    eta   = beta0 + (X - mean X) b + sum_k Z_k r_k[level]
    Intercept = beta0 - mean(X) . b

For the poisson family the exact map is used in its density form (SPEC: "W gets the induced
density f_Beta(R2(W)) dR2/dW"), with the closed form
R2(W) = (e^W - 1) / (e^W - 1 + e^(-beta0 - W/2)): W is a free positive parameter whose prior
is that density, which the library implements the other way round (R2 free, W its inverse
map). s_j is the population standard deviation (ddof 0) of the column, 1 for intercepts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

__all__ = ["GroupSpec", "ReferenceDesign", "reference_design", "reference_model",
           "poisson_r2_of_w"]


@dataclass
class GroupSpec:
    """A group term: factor column, slope columns (besides the intercept), correlated."""

    factor: str
    slopes: tuple[str, ...] = ()
    correlated: bool = True


@dataclass
class ReferenceDesign:
    y: np.ndarray
    X: np.ndarray
    x_names: list[str]
    groups: list[dict]  # each: factor, labels, codes, levels, Z (n x q), scales, correlated
    components: list[str]


def reference_design(data: pd.DataFrame, response: str, predictors: list[str],
                     groups: list[GroupSpec]) -> ReferenceDesign:
    """The design of ``response ~ predictors + (1 + slopes | factor) + ...`` by hand."""
    X = data[predictors].to_numpy(dtype=float)
    components = list(predictors)
    out = []
    for spec in groups:
        codes, levels = pd.factorize(data[spec.factor].astype(str), sort=True)
        labels = ["1", *spec.slopes]
        Z = np.column_stack([np.ones(len(data))] + [data[s].to_numpy(float) for s in spec.slopes])
        scales = np.array([1.0] + [float(np.std(data[s].to_numpy(float))) for s in spec.slopes])
        out.append({"factor": spec.factor, "labels": labels, "codes": codes,
                    "levels": [str(v) for v in levels], "Z": Z, "scales": scales,
                    "correlated": spec.correlated and len(labels) > 1})
        components += [f"{label}|{spec.factor}" for label in labels]
    return ReferenceDesign(y=data[response].to_numpy(float), X=X, x_names=list(predictors),
                           groups=out, components=components)


def poisson_r2_of_w(w, beta0, xp=np):
    """R2 of a log-link poisson model with eta ~ N(beta0, W) (lognormal moments)."""
    return xp.expm1(w) / (xp.expm1(w) + xp.exp(-beta0 - w / 2))


def reference_model(design: ReferenceDesign, *, family: str = "gaussian",
                    r2_beta: tuple[float, float] = (1.0, 1.0), concentration: float = 0.5,
                    intercept: tuple[float, float] = (0.0, 1.0),
                    sigma_halfnormal: float = 1.0, likelihood: bool = True) -> pm.Model:
    """The R2D2M2 model of SPEC section 2 for ``design``.

    Parameters
    ----------
    design : ReferenceDesign
    family : {"gaussian", "poisson"}
    r2_beta : (a, b)
        Beta prior of R2.
    concentration : float
        Symmetric Dirichlet concentration.
    intercept : (mu, sigma)
        Normal prior of beta0, the intercept of the centered design.
    sigma_halfnormal : float
        Scale of the HalfNormal prior of sigma (gaussian).
    likelihood : bool
        False leaves the observations out: NUTS then samples the prior (a check of the
        poisson W density, which has no forward sampler).
    """
    n, p = design.X.shape
    means = design.X.mean(axis=0)
    s_x = design.X.std(axis=0)
    Xc = design.X - means
    coords = {"coef": design.x_names, "component": design.components}
    for g in design.groups:
        coords[g["factor"]] = g["levels"]
        coords[f"{g['factor']}__term"] = g["labels"]
    with pm.Model(coords=coords) as model:
        beta0 = pm.Normal("beta0", intercept[0], intercept[1])
        phi = pm.Dirichlet("phi", a=np.full(len(design.components), concentration),
                           dims="component")
        if family == "gaussian":
            sigma = pm.HalfNormal("sigma", sigma_halfnormal)
            R2 = pm.Beta("R2", alpha=r2_beta[0], beta=r2_beta[1])
            W = pm.Deterministic("W", sigma**2 * R2 / (1 - R2))
        elif family == "poisson":
            W = pm.HalfFlat("W")
            R2 = pm.Deterministic("R2", poisson_r2_of_w(W, beta0, pt))
            # prior of W: Beta density of R2(W) times the Jacobian dR2/dW
            jac = pt.grad(R2, W)
            pm.Potential("W_prior", pm.logp(pm.Beta.dist(r2_beta[0], r2_beta[1]), R2)
                         + pt.log(jac))
        else:
            raise ValueError(f"reference model has no family {family!r}")
        z = pm.Normal("b_z", 0, 1, dims="coef")
        b = pm.Deterministic("b", z * pt.sqrt(phi[:p] * W) / s_x, dims="coef")
        pm.Deterministic("Intercept", beta0 - pt.dot(means, b))
        eta = beta0 + pt.dot(Xc, b)
        k = p
        for g in design.groups:
            f, q = g["factor"], len(g["labels"])
            sd = pm.Deterministic(f"sd_{f}", pt.sqrt(phi[k:k + q] * W) / g["scales"],
                                  dims=f"{f}__term")
            k += q
            zr = pm.Normal(f"r_{f}_z", 0, 1, dims=(f, f"{f}__term"))
            if g["correlated"] and q == 2:
                # LKJ(eta = 1) on a 2 x 2 correlation matrix is uniform on the correlation
                rho = pm.Uniform(f"cor_{f}_rho", -1.0, 1.0)
                r = pt.stack([zr[:, 0] * sd[0],
                              (rho * zr[:, 0] + pt.sqrt(1 - rho**2) * zr[:, 1]) * sd[1]], axis=1)
            elif g["correlated"]:
                # only the correlation of LKJCholeskyCov is used (its sds are free nuisance
                # parameters that nothing else touches)
                _, corr, _ = pm.LKJCholeskyCov(f"L_{f}", n=q, eta=1.0,
                                               sd_dist=pm.Exponential.dist(1.0, shape=q),
                                               compute_corr=True)
                r = pt.dot(zr, pt.linalg.cholesky(corr).T) * sd
            else:
                r = zr * sd
            r = pm.Deterministic(f"r_{f}", r, dims=(f, f"{f}__term"))
            eta = eta + (pt.as_tensor(g["Z"]) * r[g["codes"]]).sum(axis=1)
        if not likelihood:
            pass
        elif family == "gaussian":
            pm.Normal("y", eta, sigma, observed=design.y)
        else:
            pm.Poisson("y", pt.exp(eta), observed=design.y)
    return model
