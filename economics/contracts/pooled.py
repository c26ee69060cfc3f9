"""Expected accuracy of the pooled data ``E_n[a(n . m)]`` and the first-moment budgets, without
enumerating outcomes (ours; the quantities are P's, the method is ours).

The pooled total ``n . m`` is the sum of N independent draws, each participant contributing ``m_i``
with probability ``p_i``. Everything the first-moment problem needs (P, SPEC §5: the objective,
the P-budget ``t_bar_i(m) = E_{n|n_i>=1}[v(a(n . m))]`` and their first and second derivatives in
``m``) is an expectation of ``a``, ``a'`` or ``a''`` at ``m_j + m_l + R``, where ``R`` is the total
of N − 2 draws (two participants of known types plus the others, by exchangeability):

* ``E[a(S)] = sum_jl q_j q_l E[a(m_j + m_l + R)]``;
* ``E[n_j a'(S)] = N q_j sum_l q_l E[a'(m_j + m_l + R)]``;
* ``E[n_j n_l a''(S)] = N(N−1) q_j q_l E[a''(m_j + m_l + R)] + [j = l] N q_j sum_k q_k E[a''(m_j + m_k + R)]``;
* ``E[a(S) | n_i >= 1] = (E[a(S)] − P(n_i = 0) E[a(S) | n_i = 0]) / P(n_i >= 1)``, where given
  ``n_i = 0`` the draws come from the other types, renormalised (the same formulas again).

:class:`ConvolvedDraws` builds the distribution of ``R`` by binary powering (about ``2 log2 N``
additions of two independent totals). An addition of few atoms (at most ``DIRECT_PAIRS`` pairs)
sums every pair and merges totals closer than ``MERGE`` cell widths (exact but for that). A
larger one works on cells of width ``delta``, each holding the first four moments (mass, mean,
variance, third moment) of the probability in it. The moment arrays are convolved by FFT
(binomial expansion of the moments of a sum), and the probability landing in each result cell
(width ``2 delta``) is replaced by the two-point Gauss rule with the same four moments (positive
weights, nodes inside the cell). So the total's first three moments are exact, and a reduction
changes an expectation ``E[f(.)]`` by at most ``sup|f''''| (2 delta)^4 / 384`` times the
probability it moves: of order ``(delta / S)^4`` relative for the smooth accuracy curves, whose
k-th derivative at a total ``S`` is of order ``a / S^k``. ``delta`` is ``RESOLUTION`` times the
low end of the pooled total's bulk (mean − 4 sd), clipped so that ``MIN_CELLS`` to ``MAX_CELLS``
cells span the bulk of ``R``. After each FFT addition, tails holding at most ``TRIM`` are
dropped. A type-excluded distribution enters a budget with weight ``P(n_i = 0) / P(n_i >= 1)``;
when that weight is small its cells are coarser, and below ``NEGLIGIBLE`` it is skipped.

Accuracy, measured against enumeration in ``tests/economics/test_econ_contracts_scale.py``:
within 6e-11 relative for N <= 40 on every accuracy family (value, budgets, gradients,
Hessians), and within 4e-12 at N = 200–1024 where enumeration fits. The exception is the kink of
the clipped generalisation bound, where ``a`` reaches 0. If a total lies within a few ``delta``
of it with non-negligible probability, the error there is of order ``jump(a') * delta`` times that
probability. We measured up to 1e-6 relative in the value and 1e-3 in the Hessian on menus built
to put the pooled total around the kink (about 55 data points); solved menus keep it far away.
Speed: ``K = 5, N = 1024`` takes a few milliseconds per evaluation.

:class:`EnumeratedDraws` computes the same quantities from all enumerated outcomes
(:class:`~economics.contracts.outcomes.Outcomes`): the reference, feasible while
``C(N+I−1, I−1) <= MAX_OUTCOMES``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import fft

from coopsim.errors import InputError, check
from economics._checks import as_vector, positive_int, probabilities
from economics.contracts.accuracy import AccuracyFunction
from economics.contracts.outcomes import Outcomes, n_outcomes

#: The ways to compute the expectations: convolution (default) and enumeration (the reference).
METHODS: tuple[str, ...] = ("auto", "convolution", "enumeration")

#: Cell width as a fraction of the low end of the pooled total's bulk (accuracy knob, see above).
RESOLUTION = 1e-3
#: Fewest and most cells over the bulk of the others' total (the cell width is clipped to both).
MIN_CELLS = 256
MAX_CELLS = 4096
#: Additions of at most this many pairs of atoms are done pair by pair (else by FFT on cells).
DIRECT_PAIRS = 8192
#: Totals closer than this (in cell widths) are merged in a pair-by-pair addition.
MERGE = 1e-9
#: Smallest share of a cell's probability a Gauss node may carry (else one node at the mean).
SPLIT = 1e-12
#: Probability dropped from each tail after each convolution.
TRIM = 1e-16
#: Cells a distribution may span: the evaluation at every pair of types then holds arrays of
#: 15 x 2^21 numbers (K = 5), several GiB in all, so a longer one is refused (not reached in
#: practice: a distribution spans about ``MAX_CELLS`` cells, its bulk).
CELL_LIMIT = 1 << 20
#: A type-excluded distribution whose probability ``P(n_i = 0)`` is below this is skipped.
NEGLIGIBLE = 1e-18


@dataclass(frozen=True, eq=False)
class FirstMoments:
    """Expectations over the type draws at one menu ``m`` (derivatives in ``m``).

    ``value = E_n[a(n . m)]`` (P objective); ``budget[i] = E_{n|n_i>=1}[a(n . m)]`` (P-budget in
    accuracy units); with ``order >= 1``: ``grad[j] = E[n_j a'(n . m)]``, ``budget_jac[i, j]``;
    with ``order == 2``: ``hess[j, l] = E[n_j n_l a''(n . m)]`` and ``budget_hess(lam) =
    sum_i lam_i d^2 budget_i / dm^2``. Entries not computed (lower ``order``) are None.
    """

    value: float
    budget: np.ndarray
    grad: np.ndarray | None = None
    budget_jac: np.ndarray | None = None
    hess: np.ndarray | None = None
    budget_hess_of: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def budget_hess(self, lam: np.ndarray) -> np.ndarray:
        """``sum_i lam_i`` times the Hessian of ``budget[i]`` in ``m`` (needs ``order == 2``)."""
        if self.budget_hess_of is None:
            raise ValueError("budget Hessians were not computed (order < 2)")
        return self.budget_hess_of(np.asarray(lam, dtype=np.float64))


class TypeDraws(Protocol):
    """N participants' types drawn i.i.d. from ``probs``; expectations of the pooled accuracy."""

    n_participants: int
    probs: np.ndarray
    method: str

    def first_moments(self, accuracy: AccuracyFunction, m: np.ndarray, order: int = 0) -> FirstMoments: ...


def _check_menu(m: np.ndarray, n_types: int) -> np.ndarray:
    return as_vector("m", m, n_types)


def _check_order(order: int) -> int:
    check(order in (0, 1, 2), "order", order, "0 (values), 1 (and gradients) or 2 (and Hessians)")
    return int(order)


# ------------------------------------------------------------------------------- enumeration


@dataclass(frozen=True, eq=False)
class EnumeratedDraws:
    """The reference: every outcome ``n`` with its exact pmf (:class:`Outcomes`)."""

    outcomes: Outcomes
    method: str = "enumeration"

    @classmethod
    def create(cls, n_participants: int, probs: np.ndarray) -> EnumeratedDraws:
        """Enumerate ``Multinomial(n_participants, probs)`` (refused beyond ``MAX_OUTCOMES`` outcomes)."""
        return cls(Outcomes.enumerate(n_participants, probs))

    @property
    def n_participants(self) -> int:
        return self.outcomes.n_participants

    @property
    def probs(self) -> np.ndarray:
        return self.outcomes.probs

    def first_moments(self, accuracy: AccuracyFunction, m: np.ndarray, order: int = 0) -> FirstMoments:
        """Sums over all outcomes with the pmf (``value``, ``grad``, ``hess``) or the conditional
        weights ``pmf [n_i >= 1] / P(n_i >= 1)`` (``budget`` and its derivatives)."""
        order = _check_order(order)
        out = self.outcomes
        n = out.n.astype(np.float64)
        total = n @ _check_menu(m, out.n_types)
        if order == 0:
            a = accuracy.value(total)
            return FirstMoments(float(out.pmf @ a), out.conditional.T @ a)
        a, a1, a2 = accuracy.all(total)
        grad = n.T @ (out.pmf * a1)
        jac = (out.conditional * a1[:, None]).T @ n
        if order == 1:
            return FirstMoments(float(out.pmf @ a), out.conditional.T @ a, grad, jac)

        def quad(w: np.ndarray) -> np.ndarray:
            return (n * (w * a2)[:, None]).T @ n

        return FirstMoments(
            float(out.pmf @ a), out.conditional.T @ a, grad, jac, quad(out.pmf), lambda lam: quad(out.conditional @ lam)
        )


# ------------------------------------------------------------------------------- convolution


@dataclass(frozen=True, eq=False)
class _Cells:
    """Probability on cells ``[j delta, (j+1) delta)``, ``j = start .. start + L − 1``: moments
    ``M[k, j] = sum w u^k`` (k = 0..3) in the cell's own coordinate ``u = x / delta − j``."""

    start: int
    moments: np.ndarray


class _TooManyCells(Exception):
    """A distribution would span more than ``CELL_LIMIT`` cells."""


def _cells(pos: np.ndarray, w: np.ndarray) -> _Cells:
    """Bin atoms at positions ``pos`` (in cell widths) with weights ``w``."""
    j = np.floor(pos)
    u = pos - j
    j = j.astype(np.int64)
    start = int(j.min())
    idx = j - start
    length = int(idx.max()) + 1
    if length > CELL_LIMIT:
        raise _TooManyCells(length)
    moments = np.empty((4, length))
    wu = w
    for k in range(4):
        moments[k] = np.bincount(idx, weights=wu, minlength=length)
        if k < 3:
            wu = wu * u
    return _Cells(start, moments)


def _convolve(a: _Cells, b: _Cells) -> tuple[int, np.ndarray]:
    """Moments of the sum, about ``(j_a + j_b) delta`` in cell widths (``u`` in [0, 2)):
    ``M_k = sum_i C(k, i) M^a_i * M^b_{k-i}`` (four FFT convolutions). Cells no pair of occupied
    cells reaches (counted by a fifth convolution, of the occupied-cell indicators) are set to
    exactly 0, so FFT rounding never spreads probability into them."""
    la, lb = a.moments.shape[1], b.moments.shape[1]
    length = la + lb - 1
    size = fft.next_fast_len(length, real=True)

    def transform(c: _Cells) -> np.ndarray:
        return fft.rfft(np.vstack([c.moments, (c.moments[0] != 0).astype(np.float64)]), size, axis=1)

    fa = transform(a)
    fb = fa if b is a else transform(b)
    prod = np.empty_like(fa)
    prod[0] = fa[0] * fb[0]
    prod[1] = fa[0] * fb[1] + fa[1] * fb[0]
    prod[2] = fa[0] * fb[2] + 2.0 * fa[1] * fb[1] + fa[2] * fb[0]
    prod[3] = fa[0] * fb[3] + 3.0 * (fa[1] * fb[2] + fa[2] * fb[1]) + fa[3] * fb[0]
    prod[4] = fa[4] * fb[4]
    out = fft.irfft(prod, size, axis=1)[:, :length]
    moments = out[:4]
    moments[:, out[4] < 0.5] = 0.0
    return a.start + b.start, moments


def _gauss2(moments: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-point Gauss rule per cell from its moments (mass, mean, variance and third central moment
    kept): nodes ``mean + sd z`` with ``z^2 − s z − 1 = 0`` (``s`` the skewness), weights
    ``z_+ / (z_+ − z_-)`` and ``−z_- / (z_+ − z_-)``. One node at the mean where the variance is
    below 1e-24 cell widths squared or a node would carry less than ``SPLIT`` of the mass.
    Returns nodes (cell coordinate, clipped to ``[0, width]``: only rounding noise in far tails is
    clipped) and weights, ``(2, cells)`` each."""
    m0 = moments[0]
    pos = m0 > 0
    safe = np.where(pos, m0, 1.0)
    mean = moments[1] / safe
    e2 = moments[2] / safe
    var = e2 - mean * mean
    c3 = moments[3] / safe - 3.0 * mean * e2 + 2.0 * mean**3
    two = pos & (var > 1e-24)
    sd = np.sqrt(np.where(two, var, 1.0))
    s = np.clip(np.where(two, c3, 0.0) / sd**3, -1e8, 1e8)
    r = np.sqrt(0.25 * s * s + 1.0)
    zp = np.where(s >= 0, 0.5 * s + r, 1.0 / (r - 0.5 * s))
    zm = -1.0 / zp
    frac = zp / (zp - zm)
    # a node carrying less than SPLIT of the cell's mass is kept in the other one (the cell's mean):
    # this changes an expectation by at most f'' var / 2 with var <= SPLIT width^2, and keeps
    # rounding noise in the moments from creating atoms that would spread through later steps
    two &= (frac > SPLIT) & (frac < 1.0 - SPLIT)
    w_lo = np.where(two, m0 * frac, m0)
    w_hi = np.where(two, m0 - w_lo, 0.0)
    mid = np.where(pos, mean, 0.5 * width)
    node_lo = np.where(two, mean + sd * zm, mid)
    node_hi = np.where(two, mean + sd * zp, mid)
    return np.clip(np.stack([node_lo, node_hi]), 0.0, width), np.stack([w_lo, w_hi])


def _atoms(base: np.ndarray, moments: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The Gauss atoms (positions in cell widths, weights; zero weights dropped) of cells starting
    at ``base``."""
    nodes, w = _gauss2(moments, width)
    pos = (base[None, :] + nodes).ravel()
    w = w.ravel()
    keep = w != 0
    return pos[keep], w[keep]


def _trim(mass: np.ndarray) -> tuple[int, int]:
    """Cells ``[lo, hi)`` left when leading and trailing cells holding at most ``TRIM`` in all are dropped."""
    lo = int(np.searchsorted(np.abs(np.cumsum(mass)) > TRIM, True))
    hi = mass.shape[0] - int(np.searchsorted(np.abs(np.cumsum(mass[::-1])) > TRIM, True))
    if hi <= lo:  # nothing above TRIM (cannot happen with a probability distribution): keep the peak
        lo = int(np.argmax(np.abs(mass)))
        hi = lo + 1
    return lo, hi


def _add(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Atoms of the sum of independent draws of ``a`` and ``b`` (atoms: positions in cell widths,
    weights).

    Few pairs (at most ``DIRECT_PAIRS``): every pair summed and totals closer than ``MERGE`` cell
    widths merged at their mean (exact but for that merge). Otherwise: the cells' moments convolved
    by FFT, then the two-point Gauss rule of each width-2 result cell, tails trimmed.
    """
    (pa, wa), (pb, wb) = a, b
    if pa.shape[0] * pb.shape[0] <= DIRECT_PAIRS:
        pos = (pa[:, None] + pb[None, :]).ravel()
        w = (wa[:, None] * wb[None, :]).ravel()
        order = np.argsort(pos, kind="stable")
        pos, w = pos[order], w[order]
        new = np.empty(pos.shape[0], dtype=bool)
        new[0] = True
        new[1:] = np.diff(pos) > MERGE
        if new.all():
            return pos, w
        group = np.cumsum(new) - 1
        mass = np.bincount(group, weights=w)
        first = pos[new]
        centre = np.bincount(group, weights=w * (pos - first[group]))
        safe = np.where(mass != 0, mass, 1.0)
        return first + np.where(mass != 0, centre / safe, 0.0), mass
    ca = _cells(pa, wa)
    cb = ca if b is a else _cells(pb, wb)
    start, moments = _convolve(ca, cb)
    lo, hi = _trim(moments[0])
    idx = lo + np.flatnonzero(moments[0, lo:hi] != 0)
    return _atoms(start + idx.astype(np.float64), moments[:, idx], 2.0)


def _power(base: tuple[np.ndarray, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Atoms (positions in cell widths, weights) of the sum of ``n >= 1`` draws of ``base``
    (binary powering: one addition per bit and per squaring)."""
    result: tuple[np.ndarray, np.ndarray] | None = None
    current = base
    while True:
        if n & 1:
            result = current if result is None else _add(result, current)
        n >>= 1
        if not n:
            break
        current = _add(current, current)
    assert result is not None
    return result


def _cell_width(y: np.ndarray, q: np.ndarray, n_rest: int, n_total: int, base: float) -> float:
    """Cell width for the total of ``n_rest`` draws of offsets ``y >= 0`` (see the module docstring)."""
    mean = float(q @ y)
    var = float(q @ (y - mean) ** 2)
    spread = float(y.max())
    bulk = min(n_rest * spread, max(16.0 * math.sqrt(n_rest * var), 24.0 * spread))
    low = n_total * base + max(0.0, n_total * mean - 4.0 * math.sqrt(n_total * var))
    wanted = RESOLUTION * low if low > 0 else 0.0
    return min(max(wanted, bulk / MAX_CELLS), bulk / MIN_CELLS)


def sum_distribution(
    values: np.ndarray, probs: np.ndarray, n_draws: int, n_total: int | None = None, coarsen: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Atoms ``(x, w)`` of the total of ``n_draws`` i.i.d. draws of ``values`` with ``probs``
    (summing to 1) by cell convolution; exact for 0 or 1 draws and for equal values. ``n_total``
    (default ``n_draws``) is the number of draws in the total the caller evaluates (sets the cell
    width); ``coarsen`` multiplies the cell width (for expectations needed only roughly)."""
    v = np.asarray(values, dtype=np.float64)
    q = np.asarray(probs, dtype=np.float64)
    if n_draws == 0:
        return np.zeros(1), np.ones(1)
    if n_draws == 1:
        return v.copy(), q.copy()
    ref = float(v.min())
    y = v - ref
    if float(y.max()) == 0.0:
        return np.array([n_draws * ref]), np.array([float(q.sum()) ** n_draws])
    n_all = n_draws if n_total is None else n_total
    delta = coarsen * _cell_width(y, q, n_draws, n_all, ref)
    try:
        pos, w = _power((y / delta, q), n_draws)
    except _TooManyCells as exc:
        raise InputError(
            "n_participants",
            n_all,
            f"a pooled-data distribution of at most {CELL_LIMIT} cells (memory); these "
            f"contributions {np.round(v, 6).tolist()} need {exc.args[0]}",
        ) from None
    # squaring doubles a relative error of the total mass (rounding, trimmed tails): the mass is
    # known exactly, so restore it (what remains is the error of the distribution's shape)
    w = w * (float(q.sum()) ** n_draws / float(w.sum()))
    return n_draws * ref + pos * delta, w


@dataclass(frozen=True, eq=False)
class _Parts:
    """``V``, ``G_j = E[n_j a'(S)]``, ``H_jl = E[n_j n_l a''(S)]`` of one type distribution (full length)."""

    value: float
    grad: np.ndarray | None
    hess: np.ndarray | None


@functools.cache
def _pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(k)


@dataclass(frozen=True, eq=False)
class _Plan:
    """One type distribution's evaluation points: ``m_j + m_l + R`` for the pairs ``j <= l`` of its
    types and the atoms ``(x, w)`` of ``R`` (N − 2 draws); for N = 1 just ``m_j``."""

    types: np.ndarray
    qs: np.ndarray
    n: int
    w: np.ndarray | None
    points: np.ndarray


def _plan(m: np.ndarray, q: np.ndarray, n: int, coarsen: float = 1.0) -> _Plan:
    """The evaluation points for ``n`` draws from the normalised distribution ``q`` (zeros allowed)."""
    types = np.flatnonzero(q > 0)
    qs, ms = q[types], m[types]
    if n == 1:
        return _Plan(types, qs, n, None, ms)
    x, w = sum_distribution(ms, qs, n - 2, n, coarsen)
    jj, ll = _pairs(types.shape[0])
    return _Plan(types, qs, n, w, ((ms[jj] + ms[ll])[:, None] + x[None, :]).ravel())


def _parts(plan: _Plan, derivs: list[np.ndarray], size: int, order: int) -> _Parts:
    """``V``, ``G`` and ``H`` (P objective and its derivatives) from ``a, a', a''`` at the plan's points."""
    qs, n = plan.qs, plan.n
    k = qs.shape[0]
    pair = None
    if plan.w is None:
        u = derivs
    else:
        jj, ll = _pairs(k)
        pair = []
        for d in derivs:
            t = np.empty((k, k))
            t[jj, ll] = d.reshape(jj.shape[0], -1) @ plan.w
            t[ll, jj] = t[jj, ll]
            pair.append(t)
        u = [t @ qs for t in pair]
    value = float(qs @ u[0])
    grad = hess = None
    if order >= 1:
        grad = np.zeros(size)
        grad[plan.types] = n * qs * u[1]
    if order == 2:
        h = np.diag(n * qs * u[2])
        if pair is not None:
            h = h + n * (n - 1) * np.outer(qs, qs) * pair[2]
        hess = np.zeros((size, size))
        hess[np.ix_(plan.types, plan.types)] = h
    return _Parts(value, grad, hess)


def _evaluate(accuracy: AccuracyFunction, plans: list[_Plan], size: int, order: int) -> list[_Parts]:
    """Every plan's parts from one evaluation of the accuracy function at all their points."""
    points = np.concatenate([plan.points for plan in plans])
    derivs = accuracy.all(points) if order else (accuracy.value(points),)
    derivs = [np.asarray(d, dtype=np.float64) for d in derivs]
    out, start = [], 0
    for plan in plans:
        stop = start + plan.points.shape[0]
        out.append(_parts(plan, [d[start:stop] for d in derivs], size, order))
        start = stop
    return out


@dataclass(frozen=True, eq=False)
class ConvolvedDraws:
    """The fast path: the distribution of the others' total by cell convolution (module docstring)."""

    n_participants: int
    probs: np.ndarray
    method: str = "convolution"

    @classmethod
    def create(cls, n_participants: int, probs: np.ndarray) -> ConvolvedDraws:
        """Type draws of ``n_participants`` (>= 1) with ``probs`` (> 0, summing to 1)."""
        p = probabilities("probs", probs, strictly_positive=True)
        return cls(positive_int("n_participants", n_participants), p)

    def first_moments(self, accuracy: AccuracyFunction, m: np.ndarray, order: int = 0) -> FirstMoments:
        """``E_n[a(n . m)]``, the P-budgets and (``order``) their derivatives, without enumeration.

        The pmf's total mass ``(sum p)^N`` is kept as enumeration keeps it (``p`` is never
        renormalised); ``P(n_i = 0) = (sum p − p_i)^N``.
        """
        order = _check_order(order)
        p = self.probs
        m = _check_menu(m, p.shape[0])
        n = self.n_participants
        total = float(p.sum())
        mass = total**n
        size = p.shape[0]
        plans = [_plan(m, p / total, n)]
        absents, kept = [], []
        for i in range(size):
            rest = total - p[i]
            absent = rest**n if rest > 0 else 0.0
            absents.append(absent)
            if absent > NEGLIGIBLE * mass:
                q = p.copy()
                q[i] = 0.0
                # its error enters the budget times absent / mass: coarser cells do when that is small
                coarsen = min(16.0, max(1.0, (1e-3 * mass / absent) ** 0.25))
                plans.append(_plan(m, q / rest, n, coarsen))
                kept.append(i)
        main, *parts = _evaluate(accuracy, plans, size, order)
        by_type = dict(zip(kept, parts, strict=True))
        excluded = [(absents[i], by_type.get(i)) for i in range(size)]
        value = mass * main.value
        present = np.array([mass - absent for absent, _ in excluded])
        budget = np.array([value - (absent * part.value if part is not None else 0.0) for absent, part in excluded])
        budget = budget / present
        if order == 0:
            return FirstMoments(value, budget)
        grad = mass * main.grad
        jac = np.empty((size, size))
        for i, (absent, part) in enumerate(excluded):
            jac[i] = (grad - absent * part.grad if part is not None else grad) / present[i]
        if order == 1:
            return FirstMoments(value, budget, grad, jac)
        hess = mass * main.hess
        coef = 1.0 / present
        others = [(absent / present[i], part.hess) for i, (absent, part) in enumerate(excluded) if part is not None]
        idx = [i for i, (_, part) in enumerate(excluded) if part is not None]

        def budget_hess(lam: np.ndarray) -> np.ndarray:
            out = float(lam @ coef) * hess
            for i, (c, h) in zip(idx, others, strict=True):
                out = out - lam[i] * c * h
            return out

        return FirstMoments(value, budget, grad, jac, hess, budget_hess)


#: ``method="auto"`` enumerates up to this many outcomes (where enumeration is the faster of the two,
#: measured by benchmarks/bench_contracts.py; both agree within 1e-8 relative) and convolves beyond
AUTO_ENUMERATION = 20_000


def type_draws(n_participants: int, probs: np.ndarray, method: str = "auto") -> TypeDraws:
    """The type draws for ``method`` (one of :data:`METHODS`): convolution (any N), enumeration (the
    reference), or ``auto`` — enumeration while it has at most :data:`AUTO_ENUMERATION` outcomes
    (it is faster there), convolution beyond."""
    check(method in METHODS, "method", method, f"one of {list(METHODS)}")
    if method == "auto":
        method = "enumeration" if n_outcomes(n_participants, len(probs)) <= AUTO_ENUMERATION else "convolution"
    if method == "enumeration":
        return EnumeratedDraws.create(n_participants, probs)
    return ConvolvedDraws.create(n_participants, probs)
