r"""The light part of the guaranteed rank law: its approximants and their errors (docs/theory.md §5 (d)).

Given a winner y at race time t, each *light* competitor x (rate :math:`c_x`, not in
the exact recursion) arrives first with probability :math:`1 - e^{-\tau_x}`,
:math:`\tau_x = t c_x`, and their count B has the generating function
:math:`\prod_x f_x(z)`, :math:`f_x = e^{-\tau_x} + (1 - e^{-\tau_x}) z`.  With
:math:`S_1 = C^L = \sum c_x`, :math:`S_2 = \sum c_x^2`, :math:`S_3 = \sum c_x^3` and
:math:`c_m = \max c_x` (light competitors only), two approximants are available:

* **first order**, Poisson(:math:`t S_1`): coupling each Bernoulli with
  :math:`1\{\mathrm{Poisson}(\tau_x) \ge 1\}` gives a total variation at time t of at most
  :math:`\min(t^2 S_2/2,\ 1 - e^{-t S_1})`, and :math:`\min(S_2, S_1/(1 + S_1))` after
  mixing over :math:`t \sim \mathrm{Exp}(1)`;
* **second order**, the signed compound Poisson
  :math:`g(z) = \exp\big(t S_1 (z - 1) - \tfrac{t^2 S_2}{2}(z^2 - z)\big)`, the product of
  :math:`g_x = \exp(\tau_x w - \tfrac{\tau_x^2}{2} z w)`, w = z − 1, which matches
  :math:`f_x` to second order in :math:`\tau_x`.  In the coefficient norm
  :math:`\|\cdot\|` (the :math:`\ell_1` norm of a power series' coefficients, a
  submultiplicative norm; :math:`\|w\| = \|zw\| = 2`):
  :math:`f_x - g_x = \tau_x^3 (w/6 + w^2/2 + w^3/3) + O(\tau^4)` with
  :math:`\|w/6 + w^2/2 + w^3/3\| = \|z^3/3 - z^2/2 + z/6\| = 1`, and the higher orders are
  bounded by majorants (:math:`\|[\tau^j] f_x\| = 2/j!`, :math:`g_x` majorised by
  :math:`e^{2\tau + \tau^2}`), so :math:`\|f_x - g_x\| \le D(\tau_x)`,

  .. math::
      D(s) = s^3 + 2\Big(e^s - 1 - s - \frac{s^2}{2} - \frac{s^3}{6}\Big)
             + e^{2s + s^2} - 1 - 2s - 3s^2 - \frac{10}{3} s^3 .

  Telescoping the product with :math:`\|f_x\| = 1`, :math:`\|g_x\| \le e^{\tau_x^2}`:
  :math:`\|\prod f_x - \prod g_x\| \le e^{t^2 S_2} \sum_x D(t c_x) \le
  e^{t^2 S_2} \kappa(t c_m)\, t^3 S_3` with :math:`\kappa(s) = D(s)/s^3` (increasing: D has
  non-negative Taylor coefficients from :math:`s^3` on).  The heavy factors (norm 1) and
  the truncation at K (norm ≤ 1) do not increase it.  Mixed over t on [0, T] this is
  :math:`\le \sum_i e^{t_{i+1}^2 S_2} \kappa(t_{i+1} c_m) S_3 \int_{t_i}^{t_{i+1}} e^{-t} t^3 dt`
  on a grid :math:`0 = t_0 < .. < t_n = T`.

The second order's error is cubic in the rates instead of quadratic: for a light part
of many small rates (a flat draft) it is smaller by about :math:`S_2/(3 S_3) \ge 1/(3 c_m)`.
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["power_sums_above", "kappa", "second_order_error", "row_error", "light_state",
           "second_order_truncated", "poisson_truncated"]

#: grid of [0, T] for the mixed second-order error (fractions of T, then T itself)
_GRID = np.array([0.0, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 5 / 16, 3 / 8, 7 / 16, 1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0])


def power_sums_above(p, q, tokens, rho_w):
    r"""Exact :math:`S_1 = \sum c_x` and :math:`S_2 = \sum c_x^2`, :math:`c_x = q_x/\rho_y - p_x`, over the
    ``tokens`` with :math:`\rho_x > \rho_y`, for each ratio :math:`\rho_y`; two arrays of shape (W,).

    One sort of ``tokens`` by :math:`\rho = q/p` and prefix sums of :math:`q, p, q^2, qp, p^2`
    (:math:`S_1 = Q/\rho_y - P`, :math:`S_2 = Q_2/\rho_y^2 - 2 Q_{qp}/\rho_y + P_2` over the
    tokens above :math:`\rho_y`); tokens at the same ratio have rate 0 and are left out.
    Nothing is subtracted from a sum that holds other (heavy) rates, so the rounding is
    relative to these tokens' own sizes.  O((|tokens| + W) log |tokens|).

    >>> p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    >>> s1, s2 = power_sums_above(p, q, np.arange(3), np.array([0.4]))
    >>> round(float(s1[0]), 12), round(float(s2[0]), 12)   # c = 0.3/0.4 - 0.3, 0.5/0.4 - 0.2
    (1.5, 1.305)
    """
    tokens = np.asarray(tokens)
    rho_w = np.asarray(rho_w, dtype=float)
    if not len(tokens):
        return np.zeros(len(rho_w)), np.zeros(len(rho_w))
    pt, qt = p[tokens], q[tokens]
    with np.errstate(divide="ignore"):
        rho = np.where(pt > 0, qt / np.where(pt > 0, pt, 1.0), np.inf)
    order = np.argsort(-rho, kind="stable")                                # decreasing ratio
    rho_d, pd, qd = rho[order], pt[order], qt[order]
    pre = lambda v: np.concatenate([np.zeros(1), np.cumsum(v)])
    above = np.searchsorted(-rho_d, -rho_w, side="left")                   # count with rho_x > rho_y
    s1 = pre(qd)[above] / rho_w - pre(pd)[above]
    s2 = pre(qd * qd)[above] / rho_w ** 2 - 2 * pre(qd * pd)[above] / rho_w + pre(pd * pd)[above]
    return np.maximum(s1, 0.0), np.maximum(s2, 0.0)


def kappa(s) -> np.ndarray:
    r""":math:`\kappa(s) = D(s)/s^3` (module docstring), increasing, :math:`\kappa(0) = 1`."""
    s = np.asarray(s, dtype=float)
    small = s < 1e-2
    ss = np.where(small, 1.0, s)
    with np.errstate(over="ignore"):
        d = (ss ** 3 + 2 * (np.expm1(ss) - ss - ss ** 2 / 2 - ss ** 3 / 6)
             + np.expm1(2 * ss + ss * ss) - 2 * ss - 3 * ss ** 2 - 10 / 3 * ss ** 3)
    # below 1e-2 (where the closed form cancels) the Taylor series 1 + 3.25 s + 2.62 s^2 + 1.93 s^3
    # + ... (kappa_1 = 1/12 + 19/6) stays under 1 + 3.25 s + 3 s^2
    return np.where(small, 1 + 3.25 * s + 3 * s * s, d / ss ** 3)


def row_error(t, s2, s3, cm) -> np.ndarray:
    r""":math:`\ell_1` distance at time t between the light count's law and the second-order approximant.

    :math:`e^{t^2 S_2} \kappa(t c_m) t^3 S_3` (module docstring); arrays broadcast.
    """
    t = np.asarray(t, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.exp(t * t * s2) * kappa(t * cm) * t ** 3 * s3
    return np.where(np.isfinite(out), out, np.inf)


def second_order_error(s2, s3, cm, t_end) -> np.ndarray:
    r""":math:`\int_0^T e^{-t}\,` :func:`row_error` :math:`dt`, bounded on a grid (module docstring); shape of the inputs."""
    s2, s3, cm, t_end = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (s2, s3, cm, t_end)))
    t = t_end[..., None] * _GRID                                           # [..., G]
    # int_a^b e^{-t} t^3 dt = G(a) - G(b), G(x) = e^{-x}(x^3 + 3x^2 + 6x + 6)
    prim = np.exp(-t) * (t ** 3 + 3 * t ** 2 + 6 * t + 6)
    mass = prim[..., :-1] - prim[..., 1:]
    hi = t[..., 1:]
    with np.errstate(over="ignore", invalid="ignore"):
        factor = np.exp(hi * hi * s2[..., None]) * kappa(hi * cm[..., None])
        out = (factor * mass).sum(-1) * s3
    return np.where(np.isfinite(out) & (s3 >= 0), out, np.inf)


def poisson_truncated(lam, k: int) -> np.ndarray:
    """Rows of P(Pois(lam) = j), j < k, and P(Pois >= k) in the last column, shape (rows, k+1)."""
    lam = np.asarray(lam, dtype=float)[:, None]
    j = np.arange(k)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = np.where(lam > 0, j * np.log(np.where(lam > 0, lam, 1.0)) - lam - special.gammaln(j + 1),
                          np.where(j == 0, 0.0, -np.inf))
    out = np.empty((lam.shape[0], k + 1))
    out[:, :k] = np.exp(logpmf)
    out[:, k] = special.pdtrc(k - 1, lam[:, 0]) if k > 0 else 1.0
    return out


def second_order_truncated(a, b, k: int) -> np.ndarray:
    r"""Coefficients of :math:`\exp(a(z - 1) - b(z^2 - z))`, j < k, and the rest in the last column.

    A compound Poisson of rate :math:`\mu_1 = a + b` on jumps of 1 and :math:`\mu_2 = -b`
    on jumps of 2, so :math:`f_j = P_j(\mu_1) h_j` with :math:`P_j` the Poisson(:math:`\mu_1`)
    pmf and :math:`h_0 = h_1 = e^{b}`, :math:`h_j = h_{j-1} - 2b (j - 1) h_{j-2}/\mu_1^2`
    (Panjer's recursion :math:`j f_j = \mu_1 f_{j-1} + 2\mu_2 f_{j-2}` divided by
    :math:`P_j`).  Signed (it may dip below 0 where b is not small); the columns sum to 1.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    mu1 = a + b
    out = np.empty((len(a), k + 1))
    if k == 0:
        out[:, 0] = 1.0
        return out
    pos = mu1 > 0
    log_mu = np.log(np.where(pos, mu1, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.where(pos, 2 * b / np.where(pos, mu1, 1.0) ** 2, 0.0)
    # h_j can grow like sqrt(j!) where eps ~ 1 (P_j then tiny): rescale it, tracking ln of the scale
    h_prev2, h_prev = np.zeros_like(a), np.ones_like(a)
    log_scale = b.copy()                                                   # h_0 = e^b
    for j in range(k):
        if j == 1:
            h_prev2 = h_prev.copy()                                        # h_1 = h_0
        elif j > 1:
            h = h_prev - eps * (j - 1) * h_prev2
            h_prev2, h_prev = h_prev, h
        log_p = np.where(pos, j * log_mu - mu1 - special.gammaln(j + 1), 0.0 if j == 0 else -np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            out[:, j] = np.where(np.isfinite(log_p), np.exp(log_p + log_scale) * h_prev, 0.0)
        big = np.abs(h_prev) > 1e150
        if big.any():
            h_prev[big] *= 1e-150
            h_prev2[big] *= 1e-150
            log_scale[big] += 150 * np.log(10.0)
    out[:, k] = 1.0 - out[:, :k].sum(1)
    return out


def light_state(t_rows, light, light_sq, second, k: int) -> np.ndarray:
    """Truncated approximant of the light count per row: Poisson(t C^L), or second order where ``second``."""
    t_rows = np.asarray(t_rows, dtype=float)
    state = poisson_truncated(t_rows * light, k)
    sec = np.flatnonzero(second)
    if len(sec):
        ts = t_rows[sec]
        state[sec] = second_order_truncated(ts * light[sec], ts * ts * light_sq[sec] / 2, k)
    return state
