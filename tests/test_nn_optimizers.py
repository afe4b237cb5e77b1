"""Optimizers against NumPy transcriptions of the textbook (PyTorch) formulas, and schedulers."""

import numpy as np
import pytest

from nnpipe.nn import optimizers, schedulers

LR = 0.05
STEPS = 3
BETA1, BETA2, RHO, MU, EPS = 0.9, 0.999, 0.9, 0.9, 1e-8


def reference(kind, p, gradients, lr=LR):
    """Parameters after each gradient of `gradients`, in float64 (PyTorch conventions)."""
    p = p.astype(np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(gradients, start=1):
        g = g.astype(np.float64)
        if kind == "sgd":
            p -= lr * g
        elif kind == "momentum":  # torch.optim.SGD(momentum=0.9, dampening=0)
            m = MU * m + g
            p -= lr * m
        elif kind == "rmsprop":  # torch.optim.RMSprop(alpha=0.9): eps outside the sqrt
            v = RHO * v + (1 - RHO) * g * g
            p -= lr * g / (np.sqrt(v) + EPS)
        elif kind == "adam":  # Kingma & Ba, torch.optim.Adam
            m = BETA1 * m + (1 - BETA1) * g
            v = BETA2 * v + (1 - BETA2) * g * g
            m_hat = m / (1 - BETA1**t)
            v_hat = v / (1 - BETA2**t)
            p -= lr * m_hat / (np.sqrt(v_hat) + EPS)
        elif kind == "adamax":  # Kingma & Ba, section 7.1
            m = BETA1 * m + (1 - BETA1) * g
            v = np.maximum(BETA2 * v, np.abs(g))
            p -= lr / (1 - BETA1**t) * m / (v + EPS)
        elif kind == "adagrad":  # torch.optim.Adagrad(eps=1e-10)
            v = v + g * g
            p -= lr * g / (np.sqrt(v) + 1e-10)
        else:
            raise AssertionError(kind)
    return p


def gradients(size, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(steps):
        g = rng.normal(0, 1, size)
        g[:3] = [1e-3, -2e-3, 5e-4]  # small gradients: where the place of eps shows
        result.append(g.astype(np.float32))
    return result


def run(kind, p, grads, mask, lr=LR, first_iteration=0):
    p = p.copy()
    moments = np.zeros((2, p.size), dtype=np.float32)
    for step, g in enumerate(grads):
        getattr(optimizers, kind)(p, g, mask, moments, np.float32(lr), first_iteration + step + 1)
    return p, moments


def test_the_optimizers_tested_are_all_there_are():
    assert set(optimizers.NAMES) == {"sgd", "momentum", "rmsprop", "adam", "adamax", "adagrad"}


@pytest.mark.parametrize("kind", optimizers.NAMES)
def test_optimizer_follows_the_textbook_formula(kind):
    size = 12
    p0 = np.random.default_rng(1).normal(0, 1, size).astype(np.float32)
    grads = gradients(size)
    mask = np.ones(size, dtype=np.float32)
    expected = reference(kind, p0, grads)
    p, _ = run(kind, p0, grads, mask)
    # the updates are of order lr; a wrong formula is off by a sizeable fraction of that
    np.testing.assert_allclose(p, expected, rtol=0, atol=2e-6)
    assert np.abs(p - p0).max() > 1e-2
    # one step at a time: the state carried between calls is the optimizer's
    for steps in range(1, STEPS + 1):
        p, _ = run(kind, p0, grads[:steps], mask)
        np.testing.assert_allclose(p, reference(kind, p0, grads[:steps]), rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind", optimizers.NAMES)
def test_masked_parameters_never_move(kind):
    size = 10
    p0 = np.random.default_rng(2).normal(0, 1, size).astype(np.float32)
    grads = gradients(size, seed=5)
    mask = np.array([1, 0] * (size // 2), dtype=np.float32)
    p, _ = run(kind, p0, grads, mask)
    np.testing.assert_array_equal(p[mask == 0], p0[mask == 0])
    expected = reference(kind, p0, grads)
    np.testing.assert_allclose(p[mask == 1], expected[mask == 1], rtol=0, atol=2e-6)


def test_adam_bias_correction_uses_the_iteration_count():
    """A trainer resumed at iteration 500 corrects with t = 501, 502, ... (always on)."""
    size = 6
    p0 = np.zeros(size, dtype=np.float32)
    grads = gradients(size, steps=1)
    p, moments = run("adam", p0, grads, np.ones(size, np.float32), first_iteration=500)
    m = (1 - BETA1) * grads[0].astype(np.float64)
    v = (1 - BETA2) * grads[0].astype(np.float64) ** 2
    expected = -LR * (m / (1 - BETA1**501)) / (np.sqrt(v / (1 - BETA2**501)) + EPS)
    np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(moments[0], m, rtol=1e-6)
    np.testing.assert_allclose(moments[1], v, rtol=1e-5)


def test_moment_images_are_named_per_optimizer():
    assert optimizers.MOMENTS["sgd"] == ()
    assert optimizers.MOMENTS["adam"] == ("_m", "_v")
    assert optimizers.MOMENTS["adamax"] == ("_m", "_v")
    assert optimizers.MOMENTS["rmsprop"] == ("_g2",)


# --- schedulers ------------------------------------------------------------------------------


def state(lr=0.01):
    return schedulers.new_state(lr, 1234).reshape(-1).copy()


def step(kind, flat, loss):
    getattr(schedulers, kind)(flat, np.float32(loss))
    schedulers.end_step(flat, np.float32(loss))


def test_new_state_layout():
    flat = state(0.01)
    assert schedulers.new_state(0.01, 7).shape == (1, 1, 3, 5)
    assert flat[schedulers.ITERATION] == 0
    assert flat[schedulers.RATE] == flat[schedulers.INITIAL_RATE] == np.float32(0.01)
    assert np.isinf(flat[schedulers.PREVIOUS_LOSS]) and np.isinf(flat[schedulers.BEST_LOSS])


def test_constant_scheduler_keeps_the_rate_and_counts():
    flat = state()
    for loss in (3.0, 1.0, 2.0):
        step("constant", flat, loss)
    assert flat[schedulers.RATE] == np.float32(0.01)
    assert flat[schedulers.ITERATION] == 3
    assert flat[schedulers.PREVIOUS_LOSS] == 2.0
    assert flat[schedulers.BEST_LOSS] == 1.0


def test_linear_scheduler_goes_from_the_initial_rate_to_1e_8_in_1000_iterations():
    flat = state(0.01)
    rates = []
    for _ in range(1200):
        step("linear", flat, 1.0)
        rates.append(float(flat[schedulers.RATE]))
    rates = np.array(rates)
    # the rate after the step that ran at iteration i (counted from 0) is lerp(lr0, 1e-8, i/1000)
    iterations = np.arange(1200)
    expected = 0.01 + (1e-8 - 0.01) * np.minimum(1, iterations / 1000)
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-9)
    assert rates[500] == pytest.approx(0.005, rel=1e-4)
    assert rates[-1] == pytest.approx(1e-8, rel=1e-3)
    assert np.all(np.diff(rates) <= 0)


def test_exponential_scheduler_multiplies_by_0_999():
    flat = state(0.01)
    for _ in range(100):
        step("exponential", flat, 1.0)
    assert flat[schedulers.RATE] == pytest.approx(0.01 * 0.999**100, rel=1e-5)


def test_adaptive_scheduler_quarters_the_rate_on_a_jump_of_30_percent():
    flat = state(0.01)
    step("adaptive", flat, 1.0)  # the first step only records the loss
    assert flat[schedulers.RATE] == np.float32(0.01)
    step("adaptive", flat, 1.32)  # +32%
    assert flat[schedulers.RATE] == pytest.approx(0.0025, rel=1e-6)
    step("adaptive", flat, 1.32 * 1.5)  # +50%
    assert flat[schedulers.RATE] == pytest.approx(0.000625, rel=1e-6)


def test_adaptive_scheduler_does_not_quarter_on_a_smaller_rise():
    flat = state(0.01)
    step("adaptive", flat, 1.0)
    step("adaptive", flat, 1.2)  # +20%: a rising trend, one increase so far
    assert flat[schedulers.RATE] == np.float32(0.01)
    step("adaptive", flat, 1.3)  # second increase in a row: x0.75
    assert flat[schedulers.RATE] == pytest.approx(0.0075, rel=1e-6)


def test_adaptive_scheduler_grows_the_rate_while_the_loss_keeps_falling():
    flat = state(0.01)
    loss = 1.0
    step("adaptive", flat, loss)
    for _ in range(3):
        loss *= 0.9
        step("adaptive", flat, loss)
    assert flat[schedulers.RATE] == np.float32(0.01)
    loss *= 0.9
    step("adaptive", flat, loss)  # fourth decrease in a row: x1.15
    assert flat[schedulers.RATE] == pytest.approx(0.0115, rel=1e-6)
