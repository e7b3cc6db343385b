"""skopt's surrogate models as the searches use them: its Gaussian process with the same
formulas computed faster, and its GBRT model mended for today's scikit-learn and numpy. Both
classes are made at first use (skopt is imported then) and pickle (a speculative ask takes its
search to a worker process: guildd.speculate).

A gp suggestion fits the model (the kernel's hyperparameters by L-BFGS from three starts: about
80 log-marginal-likelihood evaluations) and then minimises the acquisition functions (about 45
predictions of one point with gradients, after 10,000 sampled points). At the tens of points a
search has, each of those is microseconds of arithmetic inside a few hundred microseconds of
scikit-learn's kernel objects (parameter introspection, cloning, generic einsums), so a
suggestion took 40-100 ms: all of it in the gap between one trial's end and the next one's
start. This model evaluates the kernel skopt's gp uses (constant * Matern 5/2, one length scale
per dimension, plus white noise: cook_estimator("GP"), noise "gaussian") directly with numpy,
the same expressions scikit-learn and skopt evaluate, and hands any other kernel to them.
tests/unit/test_models.py holds it to their values, gradients and suggested points.
"""

import functools
import math
from typing import Any, Callable, Optional

_SQRT5 = math.sqrt(5.0)


def _new(model_class: Callable[[], type]) -> Any:
    """An empty model of a class made at first use, for unpickling one."""
    cls: Any = model_class()
    return cls.__new__(cls)


@functools.cache
def gp_class() -> type:
    """The model class (built on first use: skopt is imported then)."""
    import numpy as np
    from scipy.linalg.lapack import dpotrf as potrf, dpotrs as potrs
    from scipy.spatial.distance import cdist
    from sklearn.gaussian_process import kernels as sk
    from sklearn.utils import check_array
    from skopt.learning import GaussianProcessRegressor
    from skopt.learning.gaussian_process import kernels as skopt_kernels

    def kind(kernel: Any, name: str) -> bool:
        # skopt's kernels subclass scikit-learn's only to add gradient_x
        return type(kernel) in (getattr(sk, name), getattr(skopt_kernels, name))

    def parts(kernel: Any) -> Optional[tuple[Any, Any, Any]]:
        """(constant, matern, white) when `kernel` is constant * Matern(nu=2.5) + white with
        every hyperparameter free (white is skopt's noise-free stand-in after a fit), else None."""
        if not (kind(kernel, "Sum") and kind(kernel.k1, "Product") and kind(kernel.k2, "WhiteKernel")):
            return None
        constant, matern = kernel.k1.k1, kernel.k1.k2
        if not (kind(constant, "ConstantKernel") and kind(matern, "Matern") and matern.nu == 2.5):
            return None
        if any(h.fixed for k in (constant, matern, kernel.k2) for h in k.hyperparameters):
            return None
        return constant, matern, kernel.k2

    class GaussianProcess(GaussianProcessRegressor):
        def __reduce__(self) -> Any:
            # a class made at first use pickles as the function that makes it (a speculative
            # ask takes the search to a worker process: guildd.speculate)
            state = dict(self.__getstate__(), _batch=None)  # the last 10,000 points' predictions
            return (_new, (gp_class,), state)

        def fit(self, X: Any, y: Any) -> Any:
            self._batch: Optional[tuple[Any, Any, Any]] = None
            self._fast: Optional[tuple[float, Any]] = None
            super().fit(X, y)
            found = parts(self.kernel_)
            if found is not None:
                constant, matern, _ = found
                self._fast = (float(constant.constant_value), np.asarray(matern.length_scale, dtype=float))
            return self

        def log_marginal_likelihood(self, theta: Any = None, eval_gradient: bool = False,
                                    clone_kernel: bool = True) -> Any:
            """scikit-learn's log marginal likelihood (and gradient) of the training data
            under hyperparameters `theta` (log constant, log length scales, log noise)."""
            known = self.__dict__.get("_kernel_parts")
            if known is None or known[0] is not self.kernel_:
                known = (self.kernel_, parts(self.kernel_) is not None)
                self._kernel_parts = known
            if theta is None or not known[1]:
                return super().log_marginal_likelihood(theta, eval_gradient, clone_kernel)
            X = self.X_train_
            n = X.shape[0]
            theta = np.asarray(theta, dtype=float)
            c, noise = math.exp(theta[0]), math.exp(theta[-1])
            length_scale = np.exp(theta[1:-1])
            d2 = np.square((X[:, np.newaxis, :] - X[np.newaxis, :, :]) / length_scale)
            r = np.sqrt(5.0 * d2.sum(axis=-1))
            e = np.exp(-r)
            cm = c * (1.0 + r + r * r / 3.0) * e
            K = cm.copy()
            K[np.diag_indices(n)] += noise + self.alpha
            # LAPACK's Cholesky and solves, as scipy's cholesky and cho_solve call them
            L, info = potrf(K, lower=1, clean=1)
            if info != 0:
                return (-np.inf, np.zeros_like(theta)) if eval_gradient else -np.inf
            y = self.y_train_.reshape(n, -1)
            alpha, _ = potrs(L, y, lower=1)
            lml = float((-0.5 * np.einsum("ik,ik->k", y, alpha) - np.log(np.diag(L)).sum()
                         - n / 2 * np.log(2 * np.pi)).sum())
            if not eval_gradient:
                return lml
            inner = alpha @ alpha.T - y.shape[1] * potrs(L, np.eye(n), lower=1)[0]
            # dK/dlog c, dK/dlog length scale (one per dimension, or one for all), dK/dlog noise
            shared = c * 5.0 / 3.0 * (r + 1.0) * e
            scales = d2 if d2.shape[-1] == len(length_scale) else d2.sum(axis=-1, keepdims=True)
            grad = np.empty(len(theta))
            grad[0] = 0.5 * np.sum(inner * cm)
            grad[1:-1] = 0.5 * np.einsum("ij,ijk->k", inner * shared, scales)
            grad[-1] = 0.5 * noise * np.trace(inner)
            return lml, grad

        def predict(self, X: Any, return_std: bool = False, return_cov: bool = False,
                    return_mean_grad: bool = False, return_std_grad: bool = False) -> Any:
            fast = getattr(self, "_fast", None)
            if fast is None or not hasattr(self, "X_train_") or return_cov:
                return super().predict(X, return_std, return_cov, return_mean_grad, return_std_grad)
            if return_mean_grad or return_std_grad:
                if len(X) != 1 or (return_std_grad and not return_std):
                    return super().predict(X, return_std, return_cov, return_mean_grad, return_std_grad)
                return self._one_point(np.asarray(X, dtype=float)[0], return_std, return_std_grad)
            if not return_std or len(X) < 2:
                return super().predict(X, return_std)
            kept = self._batch
            if kept is None or kept[0] is not X:
                kept = (X, *self._mean_std(X))
                self._batch = kept
            return kept[1], kept[2]

        def _mean_std(self, X: Any) -> tuple[Any, Any]:
            """A batch's mean and standard deviation, kept read-only for the next acquisition
            function asking for the same array (skopt predicts the 10,000 sampled points once
            per acquisition function: three for gp_hedge)."""
            c, length_scale = self._fast  # type: ignore[misc]
            X = check_array(X)
            r = _SQRT5 * cdist(X / length_scale, self.X_train_ / length_scale)
            k_trans = c * (1.0 + r + r * r / 3.0) * np.exp(-r)
            mean = self.y_train_std_ * k_trans.dot(self.alpha_) + self.y_train_mean_
            var = c - ((k_trans @ self.K_inv_) * k_trans).sum(axis=1)
            var[var < 0] = 0.0  # numerical error
            std = np.sqrt(var * self.y_train_std_**2)
            mean.setflags(write=False)
            std.setflags(write=False)
            return mean, std

        def _one_point(self, x: Any, return_std: bool, return_std_grad: bool) -> Any:
            """skopt's predict of one point with the mean's gradient (and the standard
            deviation and its gradient): the acquisition's L-BFGS steps."""
            c, length_scale = self._fast  # type: ignore[misc]
            diff = (x - self.X_train_) / length_scale
            dist = np.sqrt(np.square(diff).sum(axis=1))
            r = _SQRT5 * dist
            e = np.exp(-r)
            k = c * (1.0 + r + r * r / 3.0) * e
            mean = self.y_train_std_ * k.dot(self.alpha_) + self.y_train_mean_
            # d k / d x: c * (-5/3) (1 + sqrt5 d) e^(-sqrt5 d) (x - X) / length_scale^2
            dk = (-5.0 / 3.0 * c * (1.0 + r) * e)[:, np.newaxis] * diff / length_scale
            grad_mean = dk.T.dot(self.alpha_) * self.y_train_std_
            if not return_std:
                return np.array([mean]), grad_mean
            k_inv_k = self.K_inv_.dot(k)
            var = c - k.dot(k_inv_k)
            std = math.sqrt(max(var, 0.0) * self.y_train_std_**2)
            if not return_std_grad:
                return np.array([mean]), np.array([std]), grad_mean
            grad_std = np.zeros(len(x))
            if not np.isclose(std, 0.0):
                grad_std = -(k_inv_k.dot(dk)) / std * self.y_train_std_**2
            return np.array([mean]), np.array([std]), grad_mean, grad_std

    return GaussianProcess


@functools.cache
def gbrt_class() -> type:
    """skopt's GBRT model, mended: scikit-optimize 0.10.2 (its last release) lists its mixins in
    an order scikit-learn >= 1.6 no longer reads as a regressor, and its predict(return_std=True)
    calls numpy's in1d, gone in numpy 2.4. Built on first use, as skopt is imported then."""
    from skopt.learning import GradientBoostingQuantileRegressor

    class GBRTRegressor(GradientBoostingQuantileRegressor):
        def __reduce__(self) -> Any:
            return (_new, (gbrt_class,), self.__getstate__())

        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.estimator_type = "regressor"
            return tags

        def predict(self, X: Any, return_std: bool = False, return_quantiles: bool = False) -> Any:
            if return_quantiles or not return_std:
                return super().predict(X, return_quantiles=return_quantiles)
            low, mean, high = (self.regressors_[self.quantiles.index(q)].predict(X) for q in (0.16, 0.5, 0.84))
            return mean, (high - low) / 2.0

    return GBRTRegressor


@functools.cache
def drawn_ahead_space_class() -> type:
    """skopt's Space whose next big sample can be drawn ahead of time. A model's ask draws
    10,000 candidate points (`rvs`, with the optimizer's generator) and transforms them, in
    pure Python loops, before it scores them: 3-4 ms of a gp ask, and none of it depends on
    the result the ask learns. `draw_ahead` draws them now from the generator's current state
    and leaves the generator as it was; the ask's own draw, from that same state, then gets
    exactly those points and leaves the generator where its own draw would have. Built on
    first use (skopt is imported then)."""
    import numpy as np
    from skopt.space import Space

    class Drawn(list):
        """Rows drawn ahead (a plain list of them), with their transform."""

        transformed: Any = None

    def same_state(a: Any, b: Any) -> bool:
        return a[0] == b[0] and a[2:] == b[2:] and np.array_equal(a[1], b[1])

    class DrawnAheadSpace(Space):
        _ahead: Optional[tuple[int, tuple, tuple, Any]] = None  # (n, state before, state after, Drawn)

        def draw_ahead(self, n_samples: int, rng: Any) -> None:
            """Draws the next `n_samples` rows as `rvs` with `rng` would, with their transform;
            `rng` is left as it was."""
            before = rng.get_state()
            drawn = Drawn(super().rvs(n_samples=n_samples, random_state=rng))
            drawn.transformed = super().transform(drawn)
            self._ahead = (n_samples, before, rng.get_state(), drawn)
            rng.set_state(before)

        def rvs(self, n_samples: int = 1, random_state: Any = None) -> Any:
            ahead, self._ahead = self._ahead, None
            if (ahead is not None and ahead[0] == n_samples and isinstance(random_state, np.random.RandomState)
                    and same_state(random_state.get_state(), ahead[1])):
                random_state.set_state(ahead[2])
                return ahead[3]
            return super().rvs(n_samples=n_samples, random_state=random_state)

        def transform(self, X: Any) -> Any:
            if isinstance(X, Drawn) and X.transformed is not None:
                return X.transformed.copy()
            return super().transform(X)

        def __reduce__(self) -> Any:
            # made at first use: pickles as the function that makes it; what was drawn ahead stays here
            state = dict(self.__dict__)
            state.pop("_ahead", None)
            return (_new, (drawn_ahead_space_class,), state)

    return DrawnAheadSpace


@functools.cache
def use_plain_normal() -> None:
    """Has skopt's acquisition functions take the standard normal's cdf and pdf straight from
    their expressions (scipy.special.ndtr; exp(-x²/2)/√(2π): what scipy.stats.norm computes
    for them) instead of through scipy.stats' generic distribution machinery: about 40 µs a
    call, and an ask makes some fifty. The same values (tests/unit/test_models.py); anything
    else of `norm` is scipy's."""
    import skopt.acquisition

    skopt.acquisition.norm = _plain_normal()


def _plain_normal() -> Any:
    import numpy as np
    from scipy import stats
    from scipy.special import ndtr

    root_2pi = np.sqrt(2 * np.pi)  # as scipy's _norm_pdf_C

    class PlainNormal:
        @staticmethod
        def cdf(x: Any) -> Any:
            return ndtr(np.asarray(x, dtype=np.float64))[()]

        @staticmethod
        def pdf(x: Any) -> Any:
            x = np.asarray(x, dtype=np.float64)
            return (np.exp(-x**2 / 2.0) / root_2pi)[()]

        def __getattr__(self, name: str) -> Any:
            return getattr(stats.norm, name)

    return PlainNormal()
