"""Learning-rate schedulers (nn_lib's), run after each step, and the layout of the trainer
state image (width 5, height 3):

    row 0: iteration, learning rate, initial learning rate, previous loss, best loss
    row 1: seed of the mini-batch and dropout draws; the iteration nn_train's run with a
           checkpoint ends at (so a resumed run knows how far to go)
    row 2: adaptive scheduler: trend moment, decreases in a row, increases in a row
"""

import numba
import numpy as np

NAMES = ("constant", "linear", "exponential", "adaptive")
ITERATION, RATE, INITIAL_RATE, PREVIOUS_LOSS, BEST_LOSS = range(5)
SEED, TARGET = 5, 6
TREND, DECREASES, INCREASES = 10, 11, 12
STATE_SHAPE = (1, 1, 3, 5)
MIN_RATE = 1e-8


def new_state(learning_rate, seed):
    state = np.zeros(STATE_SHAPE, dtype=np.float32)
    flat = state.reshape(-1)
    flat[RATE] = flat[INITIAL_RATE] = learning_rate
    flat[PREVIOUS_LOSS] = flat[BEST_LOSS] = np.inf
    flat[SEED] = seed
    return state


def with_learning_rate(state, learning_rate):
    """A trainer state continued at another learning rate (a re-declared trainer, as nn_lib
    sets it): the rate and the initial rate change, the iteration count and the rest stay."""
    state = state.copy()
    flat = state.reshape(-1)
    flat[RATE] = flat[INITIAL_RATE] = learning_rate
    return state


# One function per scheduler, each setting the next learning rate after a step of loss `loss`;
# the compiled engine calls its trainer's, then end_step.


@numba.njit(cache=True)
def constant(state, loss):
    pass


@numba.njit(cache=True)
def linear(state, loss):
    progress = min(1.0, state[ITERATION] / 1000)
    state[RATE] = state[INITIAL_RATE] + (MIN_RATE - state[INITIAL_RATE]) * progress


@numba.njit(cache=True)
def exponential(state, loss):
    state[RATE] *= 0.999


@numba.njit(cache=True)
def adaptive(state, loss):
    """Shrink the rate fast on a jump of the loss, slowly on a rising trend; grow it slowly
    while the loss keeps falling."""
    if state[ITERATION] == 0:
        return
    trend = (loss - state[PREVIOUS_LOSS]) / max(1e-8, state[PREVIOUS_LOSS])
    state[TREND] = 0.75 * state[TREND] + 0.25 * np.sign(trend)
    if trend >= 0.3:
        state[RATE] = max(0.25 * state[RATE], MIN_RATE)
        state[INCREASES] = state[DECREASES] = 0
    elif state[TREND] >= 0:
        state[INCREASES] += 1
        state[DECREASES] = 0
        if state[INCREASES] >= 2:
            state[RATE] = max(0.75 * state[RATE], MIN_RATE)
            state[INCREASES] = 0
    else:
        state[DECREASES] += 1
        if state[DECREASES] >= 4:
            state[RATE] = min(1.15 * state[RATE], 0.1)
            state[DECREASES] = 0


@numba.njit(cache=True)
def end_step(state, loss):
    """After the scheduler: the counters."""
    state[ITERATION] += 1
    state[PREVIOUS_LOSS] = loss
    state[BEST_LOSS] = min(state[BEST_LOSS], loss)
