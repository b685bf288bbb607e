#!/usr/bin/env bash
# Install the contenders of benchmarks/suite.py (idempotent: a second run changes nothing).
#
#   bash benchmarks/setup.sh [--no-r] [--no-bambi] [--no-jax]
#
# 1. JAX on the CPU for r2d2formula's numpyro and blackjax samplers, into the python that has
#    r2d2formula (the package's `jax` extra: blackjax < 1.6, see pyproject.toml).
# 2. Bambi 0.17 with nutpie in its own virtual environment ($BAMBI_VENV, default
#    /work/venvs/bambi), so its pymc/formulae pins cannot touch r2d2formula's python.
# 3. R with brms and lme4 from Debian (needs root and apt; CRAN is not used), and the link
#    rstan needs: Debian's BH package leaves out its include/ folder, where rstan looks for
#    Boost, so link /usr/include (Debian's libboost-dev headers) there.
# Each step checks what is there first; the last lines check that each contender runs.
set -euo pipefail

PYTHON="${PYTHON:-python}"
BAMBI_VENV="${BAMBI_VENV:-/work/venvs/bambi}"
do_r=1; do_bambi=1; do_jax=1
for arg in "$@"; do
    case "$arg" in
        --no-r) do_r=0 ;;
        --no-bambi) do_bambi=0 ;;
        --no-jax) do_jax=0 ;;
        *) echo "unknown option $arg (use --no-r, --no-bambi, --no-jax)" >&2; exit 2 ;;
    esac
done
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
step() { printf '\n==> %s\n' "$*"; }

if [ "$do_jax" = 1 ]; then
    step "JAX, numpyro, blackjax into $($PYTHON -c 'import sys; print(sys.executable)')"
    # the requirements of r2d2formula's `jax` extra, without reinstalling r2d2formula;
    # pip leaves satisfied requirements alone
    mapfile -t reqs < <($PYTHON - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["jax"]))
EOF
)
    $PYTHON -m pip install "${reqs[@]}"
fi

if [ "$do_bambi" = 1 ]; then
    step "Bambi 0.17 + nutpie in $BAMBI_VENV"
    if [ ! -x "$BAMBI_VENV/bin/python" ]; then
        # the same interpreter as r2d2formula's, in a venv of its own
        base=$($PYTHON -c 'import sys; print(sys.base_prefix)')/bin/python3
        "$base" -m venv "$BAMBI_VENV"
        "$BAMBI_VENV/bin/python" -m pip install --upgrade pip
    fi
    if "$BAMBI_VENV/bin/python" -c "import bambi, nutpie, pyarrow, sys; \
            sys.exit(int(not bambi.__version__.startswith('0.17')))" 2>/dev/null; then
        echo "already installed"
    else
        # matplotlib 3.11 removed matplotlib.style.core, which arviz 0.23 (Bambi's) imports
        "$BAMBI_VENV/bin/python" -m pip install "bambi==0.17.*" nutpie pyarrow "matplotlib<3.11"
    fi
fi

if [ "$do_r" = 1 ]; then
    step "R, brms, lme4 (Debian packages)"
    # Recommends are left out: r-base-dev would pull in libblas-dev, liblapack-dev and
    # gfortran, which Stan does not need (g++ and R's own headers are enough) and which could
    # change what PyTensor finds to link against on the Python side.
    pkgs="r-cran-brms r-cran-lme4 g++ make"
    missing=""
    for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        apt-get update
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
    else
        echo "already installed"
    fi
    bh=$(Rscript -e 'cat(system.file(package = "BH"))')
    if [ -z "$bh" ]; then
        echo "R package BH not found after installing r-cran-brms" >&2; exit 1
    fi
    if [ ! -e "$bh/include" ]; then
        ln -s /usr/include "$bh/include"
        echo "linked $bh/include -> /usr/include"
    else
        echo "$bh/include exists"
    fi
fi

step "checks"
[ "$do_jax" = 1 ] && $PYTHON -c "import jax, numpyro, blackjax; \
print('jax', jax.__version__, 'numpyro', numpyro.__version__, 'blackjax', blackjax.__version__)"
[ "$do_bambi" = 1 ] && "$BAMBI_VENV/bin/python" -c "import bambi, formulae, pymc, nutpie; \
print('bambi', bambi.__version__, 'formulae', formulae.__version__, 'pymc', pymc.__version__, \
'nutpie', nutpie.__version__)" 2>&1 | grep -v -i "warn\|blas\|conda\|alternatively\|troubleshoot"
if [ "$do_r" = 1 ]; then
    Rscript -e 'suppressPackageStartupMessages(library(brms)); stopifnot(exists("R2D2")); cat("brms", as.character(packageVersion("brms")), "rstan", as.character(packageVersion("rstan")), "lme4", as.character(packageVersion("lme4")), "\n")'
    if [ "${CHECK_BRMS_FIT:-0}" = 1 ]; then
        # compiles a small Stan model (about a minute on a quiet machine)
        Rscript -e 'suppressPackageStartupMessages(library(brms)); set.seed(1);
d <- data.frame(x = rnorm(40)); d$y <- 1 + 0.5 * d$x + rnorm(40);
f <- brm(y ~ x, data = d, prior = prior(R2D2(), class = "b"), chains = 1, iter = 200,
         refresh = 0, silent = 2, seed = 1);
stopifnot(nrow(posterior::as_draws_df(f)) == 100); cat("brms R2D2 fit ok\n")'
    fi
fi
echo "setup done"
