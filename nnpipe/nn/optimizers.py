"""Optimizers: the textbook update rules (as in PyTorch), one function each, side by side.

`moments` is a (2, P) array holding each optimizer's running state; which rows it uses and the
names of the images that keep them between runs are in MOMENTS. Each takes the same arguments
(t counts steps from 1): the compiled engine of a network calls the one its trainer uses."""

import math

import numba

NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adagrad")
SGD, MOMENTUM, RMSPROP, ADAM, ADAMAX, ADAGRAD = range(len(NAMES))
# Suffixes of the images holding moments[0], moments[1] for parameter image P (P_m, P_v, ...).
MOMENTS = {"sgd": (), "momentum": ("_m",), "rmsprop": ("_g2",), "adam": ("_m", "_v"),
           "adamax": ("_m", "_v"), "adagrad": ("_g2",)}
BETA1, BETA2, RHO, MU, EPSILON = 0.9, 0.999, 0.9, 0.9, 1e-8


@numba.njit(cache=True, fastmath=True)
def sgd(p, g, mask, moments, lr, t):
    for i in range(p.size):
        p[i] -= mask[i] * lr * g[i]


@numba.njit(cache=True, fastmath=True)
def momentum(p, g, mask, moments, lr, t):
    velocity = moments[0]
    for i in range(p.size):
        velocity[i] = MU * velocity[i] + g[i]
        p[i] -= mask[i] * lr * velocity[i]


@numba.njit(cache=True, fastmath=True)
def rmsprop(p, g, mask, moments, lr, t):
    square = moments[0]
    for i in range(p.size):
        square[i] = RHO * square[i] + (1 - RHO) * g[i] * g[i]
        p[i] -= mask[i] * lr * g[i] / (math.sqrt(square[i]) + EPSILON)


@numba.njit(cache=True, fastmath=True)
def adam(p, g, mask, moments, lr, t):
    m, v = moments[0], moments[1]
    step = lr * math.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    eps = EPSILON * math.sqrt(1 - BETA2 ** t)  # so that the update is m_hat / (sqrt(v_hat) + eps)
    for i in range(p.size):
        m[i] = BETA1 * m[i] + (1 - BETA1) * g[i]
        v[i] = BETA2 * v[i] + (1 - BETA2) * g[i] * g[i]
        p[i] -= mask[i] * step * m[i] / (math.sqrt(v[i]) + eps)


@numba.njit(cache=True, fastmath=True)
def adamax(p, g, mask, moments, lr, t):
    m, u = moments[0], moments[1]
    step = lr / (1 - BETA1 ** t)
    for i in range(p.size):
        m[i] = BETA1 * m[i] + (1 - BETA1) * g[i]
        u[i] = max(BETA2 * u[i], abs(g[i]))
        p[i] -= mask[i] * step * m[i] / (u[i] + EPSILON)


@numba.njit(cache=True, fastmath=True)
def adagrad(p, g, mask, moments, lr, t):
    total = moments[0]
    for i in range(p.size):
        total[i] += g[i] * g[i]
        p[i] -= mask[i] * lr * g[i] / (math.sqrt(total[i]) + 1e-10)
