"""guildd.models: the gp search's Gaussian process computes what skopt's and scikit-learn's
compute (likelihood, gradients, predictions, and so the points a search asks for), and the
models pickle (a speculative ask runs in a worker process)."""

import pickle
import warnings

import numpy as np
import pytest

from guild_common.flagfuncs import SearchDim
from guildd import models
from guildd.optimizers import Search

X = SearchDim("uniform", -2.0, 2.0)


def loss(values):
    return (values["x"] + 0.3) ** 2


def gp_params(n_dims):
    from skopt.utils import cook_estimator

    return cook_estimator("GP", space=[(0.0, 1.0)] * n_dims, random_state=1, noise="gaussian").get_params(deep=False)


def fitted(model_class, X_train, y):
    model = model_class(**gp_params(X_train.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hyperparameters at a bound, on random data
        return model.fit(X_train, y)


def skopt_gp():
    from skopt.learning import GaussianProcessRegressor

    return GaussianProcessRegressor


def next_point(model_class, dims, told, seed):
    """The point a gp search asks for after being told `told` ([(values, objective)])."""
    original = models.gp_class
    models.gp_class = lambda: model_class
    try:
        search = Search("gp", {"random-starts": 1}, dims, seed=seed)
        search.ask()
        for values, objective in told:
            search.tell(values, objective)
        [values] = search.ask()
        return [values[name] for name in sorted(dims)]
    finally:
        models.gp_class = original


@pytest.mark.parametrize(
    "dims",
    [
        pytest.param({"x": X}, id="one dimension"),
        pytest.param({"x": X, "y": SearchDim("uniform", 0.0, 5.0)}, id="two dimensions, a length scale each"),
        pytest.param({"x": X, "y": SearchDim("loguniform", 0.001, 10.0)}, id="a log-uniform dimension"),
    ],
)
@pytest.mark.parametrize("n_told", [3, 8, 20])
def test_a_gp_search_asks_for_the_point_skopts_own_gaussian_process_would(dims, n_told):
    # The same point up to where the optimizers stop (L-BFGS may halt an iteration apart on
    # values equal to 1e-12, so a long search drifts apart in the 4th digit: each next point
    # is compared after the same results).
    rng = np.random.RandomState(n_told)
    told = []
    for _ in range(n_told):
        values = {"x": rng.uniform(-2, 2), "y": float(np.exp(rng.uniform(np.log(0.001), np.log(5.0))))}
        values = {name: values[name] for name in dims}
        told.append((values, loss(values) + (values.get("y", 1.0) - 1) ** 2 + rng.normal(0, 0.05)))
    got, want = next_point(models.gp_class(), dims, told, n_told), next_point(skopt_gp(), dims, told, n_told)
    assert got == pytest.approx(want, abs=1e-3, rel=1e-3)


@pytest.mark.parametrize("n_dims", [1, 3])
def test_log_marginal_likelihood_and_its_gradient_are_scikit_learns(n_dims):
    rng = np.random.RandomState(n_dims)
    X_train, y = rng.rand(15, n_dims), rng.rand(15)
    ours, theirs = fitted(models.gp_class(), X_train, y), fitted(skopt_gp(), X_train, y)
    for _ in range(20):
        theta = rng.uniform(ours.kernel_.bounds[:, 0], ours.kernel_.bounds[:, 1])
        lml, grad = ours.log_marginal_likelihood(theta, eval_gradient=True, clone_kernel=False)
        want_lml, want_grad = theirs.log_marginal_likelihood(theta, eval_gradient=True)
        assert lml == pytest.approx(want_lml, rel=1e-9, abs=1e-9)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-7, atol=1e-7)
        assert ours.log_marginal_likelihood(theta) == pytest.approx(want_lml, rel=1e-9, abs=1e-9)
    # the same fit: the same optimum (its hyperparameters may sit anywhere on a flat ridge)
    assert ours.log_marginal_likelihood_value_ == pytest.approx(theirs.log_marginal_likelihood_value_, rel=1e-6)


@pytest.mark.parametrize("n_dims", [1, 3])
def test_one_point_predictions_with_gradients_are_skopts(n_dims):
    rng = np.random.RandomState(10 + n_dims)
    X_train, y = rng.rand(12, n_dims), rng.rand(12)
    ours, theirs = fitted(models.gp_class(), X_train, y), fitted(skopt_gp(), X_train, y)
    for x in [rng.rand(1, n_dims) for _ in range(10)] + [X_train[:1].copy()]:  # a training point too
        got = ours.predict(x, return_std=True, return_mean_grad=True, return_std_grad=True)
        want = theirs.predict(x, return_std=True, return_mean_grad=True, return_std_grad=True)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-9)
        mean, grad_mean = ours.predict(x, return_mean_grad=True)
        np.testing.assert_allclose(mean, want[0], rtol=1e-9)
        np.testing.assert_allclose(grad_mean, want[2], rtol=1e-7, atol=1e-9)


def test_batch_predictions_match_skopt_and_are_not_shared_across_fits():
    rng = np.random.RandomState(0)
    X_train, y = rng.rand(15, 1), rng.rand(15)
    ours, theirs = fitted(models.gp_class(), X_train, y), fitted(skopt_gp(), X_train, y)
    batch = rng.rand(500, 1)
    mean, std = ours.predict(batch, return_std=True)
    want_mean, want_std = theirs.predict(batch, return_std=True)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, want_std, rtol=1e-7, atol=1e-10)
    assert ours.predict(batch, return_std=True)[0] is mean  # the next acquisition function's ask
    with pytest.raises(ValueError):
        mean[0] = 1.0  # kept arrays are read-only
    np.testing.assert_allclose(ours.predict(batch), want_mean, rtol=1e-9)
    ours.fit(X_train, y + 1.0)
    assert ours.predict(batch, return_std=True)[0][0] == pytest.approx(want_mean[0] + 1.0, rel=1e-6)


def test_another_kernel_is_left_to_scikit_learn():
    from skopt.learning.gaussian_process.kernels import RBF

    rng = np.random.RandomState(2)
    X_train, y = rng.rand(10, 2), rng.rand(10)
    params = dict(gp_params(2), kernel=RBF(1.0))
    ours, theirs = models.gp_class()(**params).fit(X_train, y), skopt_gp()(**params).fit(X_train, y)
    x = rng.rand(1, 2)
    for g, w in zip(ours.predict(x, return_std=True, return_mean_grad=True, return_std_grad=True),
                    theirs.predict(x, return_std=True, return_mean_grad=True, return_std_grad=True)):
        np.testing.assert_allclose(g, w, rtol=1e-9)


@pytest.mark.parametrize("algorithm", ["gp", "gbrt", "forest"])
def test_a_search_pickles_and_asks_the_same_next_point_after(algorithm):
    search = Search(algorithm, {"random-starts": 2}, {"x": X}, seed=7)
    for _ in range(4):
        [values] = search.ask()
        search.tell(values, loss(values))
    copy = pickle.loads(pickle.dumps(search))
    for _ in range(2):
        [values] = search.ask()
        assert copy.ask() == [values]
        search.tell(values, loss(values))
        copy.tell(values, loss(values))


MIXED = {"x": X, "lr": SearchDim("loguniform", 1e-4, 1.0), "layers": SearchDim("uniform", 1, 8, integer=True),
         "act": ["relu", "tanh", "gelu"]}


@pytest.mark.parametrize("algorithm", ["gp", "gbrt", "forest"])
def test_candidates_drawn_ahead_give_the_same_points_and_are_not_drawn_again(algorithm, monkeypatch):
    from skopt.space import Space

    draws = []
    rvs = Space.rvs
    monkeypatch.setattr(Space, "rvs", lambda self, n_samples=1, random_state=None:
                        draws.append(n_samples) or rvs(self, n_samples=n_samples, random_state=random_state))
    flags = {"random-starts": 2}
    plain, ahead = Search(algorithm, flags, MIXED, seed=3), Search(algorithm, flags, MIXED, seed=3)
    [values] = plain.ask()
    assert ahead.ask() == [values]
    for told in range(1, 7):
        plain.tell(values, loss(values))
        [asked] = plain.ask()
        ahead = pickle.loads(pickle.dumps(ahead))  # as the compute process gets it
        ahead.prepare_ask()
        del draws[:]
        ahead.tell(values, loss(values))
        assert ahead.ask() == [asked]
        if told >= 2:  # past the random starts: the model's ask took the candidates drawn ahead
            assert 10000 not in draws
        values = asked


def test_the_plain_normal_is_scipys_normal():
    from scipy import stats

    plain = models._plain_normal()
    rng = np.random.RandomState(5)
    xs = np.concatenate([rng.randn(1000) * 10, [0.0, -0.0, np.inf, -np.inf, np.nan, 40.0, -40.0, 1e-300]])
    for fn in ("cdf", "pdf"):
        np.testing.assert_array_equal(getattr(plain, fn)(xs), getattr(stats.norm, fn)(xs))  # bit for bit
        for x in xs[:20]:
            mine, theirs = getattr(plain, fn)(x), getattr(stats.norm, fn)(x)
            assert type(mine) is type(theirs) and (mine == theirs or (np.isnan(mine) and np.isnan(theirs)))
    assert plain.logcdf(-3.0) == stats.norm.logcdf(-3.0)  # the rest is scipy's
