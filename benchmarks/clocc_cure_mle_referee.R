# Referee for the cure family likelihood: the same mixture (Weibull uncured, logit cure
# fractions) written independently with base R (dweibull/pweibull) and maximised with optim.
# Run from the repo root: Rscript benchmarks/clocc_cure_mle_referee.R
# Compare with the NumPy likelihood (kmbayes.families.cure) maximised by SciPy: on CLOCC both give
# MLE (alpha, log_hr_uncured, log_shape, cure_logit0, cure_effect) = (-0.309, 0.234, 0.167, -3.68, 2.86),
# -log L 467.7152, and -log L 468.134286 at (-0.2, 0.1, 0.15, -3, 2).
d <- read.csv("data/processed/clocc_os_ipd.csv")
x <- as.numeric(d$arm == "combined"); t <- pmax(d$time, 1e-4 * max(d$time)); e <- d$event
tref <- 36
nll <- function(p) {  # p = alpha, log_hr_uncured, log_shape, cure_logit0, cure_effect
  k <- exp(p[3]); eta <- p[1] + p[2] * x
  sc <- tref * exp(-eta / k)              # H_u = exp(eta) (t/tref)^k
  pi <- plogis(p[4] + p[5] * x)
  ll <- ifelse(e == 1, log(1 - pi) + dweibull(t, k, sc, log = TRUE),
               log(pi + (1 - pi) * pweibull(t, k, sc, lower.tail = FALSE)))
  -sum(ll)
}
fit <- optim(c(-0.3, 0, 0, -2, 1), nll, method = "BFGS", control = list(reltol = 1e-12, maxit = 1000))
cat("R MLE:", sprintf("%.4f", fit$par), "nll", sprintf("%.4f", fit$value), "\n")
cat("R cure fractions:", sprintf("%.4f", plogis(c(fit$par[4], fit$par[4] + fit$par[5]))), " HR_u", sprintf("%.4f", exp(fit$par[2])), "\n")
cat("R nll at fixed point:", sprintf("%.6f", nll(c(-0.2, 0.1, 0.15, -3, 2))), "\n")
