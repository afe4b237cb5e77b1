"""Optimizers: the textbook update rules (as in PyTorch), one function each, side by side.

`moments` is a (2, P) array holding each optimizer's running state; which rows it uses and the
names of the images that keep them between runs are in MOMENTS. Each takes the same arguments
(t counts steps from 1): the compiled engine of a network calls the one its trainer uses."""

import math

import numba
import numpy as np

NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamax", "adagrad")
SGD, MOMENTUM, RMSPROP, ADAM, ADAMAX, ADAGRAD = range(len(NAMES))
# Suffixes of the images holding moments[0], moments[1] for parameter image P (P_m, P_v, ...).
MOMENTS = {
    "sgd": (),
    "momentum": ("_m",),
    "rmsprop": ("_g2",),
    "adam": ("_m", "_v"),
    "adamax": ("_m", "_v"),
    "adagrad": ("_g2",),
}
BETA1, BETA2, RHO, MU, EPSILON = 0.9, 0.999, 0.9, 0.9, 1e-8
# float32 in the loops: a float64 constant would turn each element's arithmetic into float64
B1, B2, R, M = np.float32(BETA1), np.float32(BETA2), np.float32(RHO), np.float32(MU)
ONE_MINUS_B1, ONE_MINUS_B2, ONE_MINUS_R = np.float32(1 - BETA1), np.float32(1 - BETA2), np.float32(1 - RHO)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def sgd(p, g, mask, moments, lr, t):
    lr = np.float32(lr)
    for i in range(p.size):
        p[i] -= mask[i] * lr * g[i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def momentum(p, g, mask, moments, lr, t):
    velocity, lr = moments[0], np.float32(lr)
    for i in range(p.size):
        velocity[i] = M * velocity[i] + g[i]
        p[i] -= mask[i] * lr * velocity[i]


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def rmsprop(p, g, mask, moments, lr, t):
    square, lr, eps = moments[0], np.float32(lr), np.float32(EPSILON)
    for i in range(p.size):
        square[i] = R * square[i] + ONE_MINUS_R * g[i] * g[i]
        p[i] -= mask[i] * lr * g[i] / (np.sqrt(square[i]) + eps)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def adam(p, g, mask, moments, lr, t):
    m, v = moments[0], moments[1]
    step = np.float32(lr * math.sqrt(1 - BETA2**t) / (1 - BETA1**t))
    # so that the update is m_hat / (sqrt(v_hat) + eps)
    eps = np.float32(EPSILON * math.sqrt(1 - BETA2**t))
    for i in range(p.size):
        m[i] = B1 * m[i] + ONE_MINUS_B1 * g[i]
        v[i] = B2 * v[i] + ONE_MINUS_B2 * g[i] * g[i]
        p[i] -= mask[i] * step * m[i] / (np.sqrt(v[i]) + eps)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def adamax(p, g, mask, moments, lr, t):
    m, u = moments[0], moments[1]
    step, eps = np.float32(lr / (1 - BETA1**t)), np.float32(EPSILON)
    for i in range(p.size):
        m[i] = B1 * m[i] + ONE_MINUS_B1 * g[i]
        u[i] = max(B2 * u[i], abs(g[i]))
        p[i] -= mask[i] * step * m[i] / (u[i] + eps)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def adagrad(p, g, mask, moments, lr, t):
    total, lr, eps = moments[0], np.float32(lr), np.float32(1e-10)
    for i in range(p.size):
        total[i] += g[i] * g[i]
        p[i] -= mask[i] * lr * g[i] / (np.sqrt(total[i]) + eps)
