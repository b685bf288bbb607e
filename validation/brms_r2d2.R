# brms's R2D2() fit of a gaussian regression, for validation/agreement.py.
#
#   Rscript validation/brms_r2d2.R DATA.csv OUT_PREFIX [SEED]
#
# DATA.csv has the response `y` and standardized predictors (population sd 1, mean 0), so that
# brms's R2D2 (b_j = z_j sqrt(phi_j tau2), tau2 = sigma^2 R2 / (1 - R2), autoscale = TRUE
# meaning "scale by sigma") is r2d2formula's R2D2 with autoscale=True (b_j = z_j
# sqrt(phi_j W) / s_j, W = sigma^2 R2 / (1 - R2), s_j = 1 here). The priors below must match
# AGREEMENT_PRIORS in validation/agreement.py:
#   R2 ~ Beta(1, 1)               mean_R2 = 0.5, prec_R2 = 2
#   phi ~ Dirichlet(0.5, ...)     cons_D2 = 0.5 (brms 2.18's default is 1)
#   Intercept ~ Normal(150, 100)  brms's class Intercept: the centered-design intercept
#   sigma ~ Student-t(3, 0, 80) truncated at 0 (half-t)
# Writes OUT_PREFIX_draws.csv (Intercept, b_<x>, sigma, R2, phi_<x>), OUT_PREFIX_info.json
# (divergences, brms version, wall time), OUT_PREFIX.stan (the generated Stan code) and
# OUT_PREFIX_fit.rds (the brmsfit).

suppressMessages(library(brms))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript brms_r2d2.R DATA.csv OUT_PREFIX [SEED]")
data <- read.csv(args[1])
out <- args[2]
seed <- if (length(args) >= 3) as.integer(args[3]) else 1L
predictors <- setdiff(names(data), "y")

form <- as.formula(paste("y ~", paste(predictors, collapse = " + ")))
priors <- c(
  prior(R2D2(mean_R2 = 0.5, prec_R2 = 2, cons_D2 = 0.5, autoscale = TRUE), class = b),
  prior(normal(150, 100), class = Intercept),
  prior(student_t(3, 0, 80), class = sigma)
)
writeLines(make_stancode(form, data = data, prior = priors), paste0(out, ".stan"))
started <- Sys.time()
fit <- brm(form, data = data, prior = priors, chains = 4, cores = 1, iter = 4000,
           warmup = 2000, seed = seed, refresh = 0, silent = 2,
           control = list(adapt_delta = 0.95), save_pars = save_pars(all = TRUE))
seconds <- as.numeric(difftime(Sys.time(), started, units = "secs"))

saveRDS(fit, paste0(out, "_fit.rds"))
draws <- as.data.frame(as_draws_df(fit))
# the R2D2 parameters' names differ between brms versions (R2D2_R2 / R2D2_phi[j], or with a
# suffix naming the parameter class): find them by pattern, in column order
r2_col <- grep("^R2D2_R2", names(draws), value = TRUE)
phi_cols <- grep("^R2D2_phi", names(draws), value = TRUE)
if (length(r2_col) != 1 || length(phi_cols) != length(predictors)) {
  stop("cannot find R2D2_R2 and ", length(predictors), " R2D2_phi columns among: ",
       paste(names(draws), collapse = ", "))
}
keep <- data.frame(.chain = draws[[".chain"]], Intercept = draws[["b_Intercept"]],
                   sigma = draws[["sigma"]], R2 = draws[[r2_col]])
for (j in seq_along(predictors)) {
  keep[[paste0("b_", predictors[j])]] <- draws[[paste0("b_", predictors[j])]]
  keep[[paste0("phi_", predictors[j])]] <- draws[[phi_cols[j]]]
}
write.csv(keep, paste0(out, "_draws.csv"), row.names = FALSE)
np <- nuts_params(fit)
divergences <- sum(np$Value[np$Parameter == "divergent__"])
info <- sprintf('{"brms_version": "%s", "divergences": %d, "seconds": %.1f, "seed": %d}',
                as.character(packageVersion("brms")), as.integer(divergences), seconds, seed)
writeLines(info, paste0(out, "_info.json"))
