"""Kernels called by address (nnpipe.nn.kernel_calls): compiled code runs a kernel it was not
linked with, through the address table it is given; a kernel's exception reaches Python; the
types a kernel is compiled for follow from its parameters' names; a kernel returns nothing."""

import numba
import numpy as np
import pytest

from nnpipe.nn import kernel_calls


@numba.njit
def scale_first(op, acts, width, training):
    if width < 0:
        raise ValueError("a negative width")
    acts[0] = op[0] * width * (2 if training else 1)


@numba.njit
def returns_a_value(op, acts):
    return acts[0]


call_scale_first = kernel_calls.caller(scale_first, 0)


@numba.njit
def driver(addresses, op, acts, width):
    call_scale_first(addresses, op, acts, width, True)


def compiled_table(*kernels, dtype=np.float32):
    for kernel in kernels:
        kernel.compile(kernel_calls.kernel_signature(kernel, numba.from_dtype(dtype)))
    return kernel_calls.address_table(kernels, dtype, range(len(kernels)))


def test_compiled_code_runs_a_kernel_through_its_address_with_converted_arguments():
    acts = np.zeros(3, dtype=np.float32)
    driver(compiled_table(scale_first), np.array([5], dtype=np.int64), acts, np.int32(3))
    assert acts[0] == 30  # width given as int32, training as a literal: converted


def test_an_exception_a_kernel_raises_reaches_the_caller():
    with pytest.raises(ValueError, match="a negative width"):
        driver(compiled_table(scale_first), np.array([5], dtype=np.int64), np.zeros(3, dtype=np.float32), -1)


def test_a_kernels_types_follow_from_its_parameter_names():
    assert kernel_calls.kernel_signature(scale_first, numba.float64) == (
        numba.types.Array(numba.int64, 1, "C"),
        numba.types.Array(numba.float64, 1, "C"),
        numba.int64,
        numba.boolean,
    )


def test_arguments_or_a_table_of_other_types_are_refused_not_called():
    float32_table = compiled_table(scale_first)
    with pytest.raises(numba.core.errors.TypingError, match="'acts' is array\\(float32, 1d, A\\)"):
        driver(float32_table, np.array([5], dtype=np.int64), np.zeros(6, dtype=np.float32)[::2], 3)
    with pytest.raises(TypeError, match="kernels compiled for other real numbers"):
        driver(float32_table, np.array([5], dtype=np.int64), np.zeros(3, dtype=np.float64), 3)


def test_a_kernel_that_returns_a_value_is_refused():
    with pytest.raises(TypeError, match="returns_a_value returns float32; a kernel returns nothing"):
        compiled_table(returns_a_value)
