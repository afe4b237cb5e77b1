"""The engine's driver calls the layers' kernels through their machine-code addresses instead
of linking their code in.

Numba links a called function's code into its caller, then optimizes the whole and generates
its machine code again, in every caller: each kernel of a network was compiled three times
(on its own, in the parallel region's function, in the entry point), most of a first run's
wait. Called by address, a kernel is compiled once, on its own, so the kernels of a network
can compile side by side in child processes (nnpipe.nn.compiled); the driver reads their
addresses from a table it is given, and compiles without them.

So that a kernel can compile before anything calls it, its argument types follow from its
parameters' names (`kernel_signature`), and it returns nothing.
"""

import inspect

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

INTEGERS = ("width", "valid", "first", "batch", "seed")
REAL_ARRAYS = ("acts", "grad_acts", "params", "grads", "stats", "losses")
REALS = ("real", "scale")


def kernel_signature(kernel, real):
    """The argument types of `kernel` (a layer file's compiled hook) for real numbers of
    Numba type `real` (float32 in the engine, float64 in gradient checks)."""

    def type_of(name):
        if name == "op":
            return types.Array(types.int64, 1, "C")
        if name in REAL_ARRAYS:
            return types.Array(real, 1, "C")
        if name in INTEGERS:
            return types.int64
        if name == "training":
            return types.boolean
        if name in REALS:
            return real
        raise LookupError(f"kernel {_name(kernel)} asks for '{name}', which has no type in {__name__}")

    return tuple(type_of(name) for name in inspect.signature(kernel.py_func).parameters)


def _name(kernel):
    return f"{kernel.py_func.__module__}.{kernel.py_func.__name__}"


def caller(kernel, slot):
    """An intrinsic for compiled code: `call(addresses, *arguments)` runs `kernel` at the
    address of its `slot` in the table `addresses` (see `address_table`) on `arguments`, and
    passes on an exception it raises. The arguments must have the types the kernel's parameter
    names declare (scalars are converted); the table, kernels compiled for the same real
    numbers: a mismatch is an error, never a call with the wrong memory layout."""
    parameters = list(inspect.signature(kernel.py_func).parameters)
    real_at = next(k for k, name in enumerate(parameters) if name in REAL_ARRAYS)

    @intrinsic
    def call(typingctx, addresses, *arguments):
        def refuse(what):
            raise numba.core.errors.TypingError(f"calling kernel {_name(kernel)}: {what}")

        if addresses != TABLE:
            refuse(f"the address table is {addresses}, not {TABLE}")
        if len(arguments) != len(parameters):
            refuse(f"it takes {len(parameters)} arguments, given {len(arguments)}")
        declared = kernel_signature(kernel, arguments[real_at].dtype)
        for name, given, wanted in zip(parameters, arguments, declared):
            if isinstance(wanted, types.Array):
                fits = isinstance(given, types.Array) and (given.dtype, given.ndim, given.layout) == (
                    wanted.dtype,
                    wanted.ndim,
                    wanted.layout,
                )
            else:
                fits = typingctx.can_convert(given, wanted) is not None
            if not fits:
                refuse(f"'{name}' is {given}, where it takes {wanted}")
        real_size = declared[real_at].dtype.bitwidth // 8

        def codegen(context, builder, signature, values):
            table = context.make_array(signature.args[0])(context, builder, values[0])
            compiled_for = builder.load(table.data)
            with builder.if_then(
                builder.icmp_signed("!=", compiled_for, context.get_constant(types.int64, real_size)),
                likely=False,
            ):
                context.call_conv.return_user_exc(
                    builder,
                    TypeError,
                    (
                        f"the address table holds kernels compiled for other real numbers than"
                        f" {_name(kernel)}'s arguments",
                    ),
                )
            address = builder.load(cgutils.gep(builder, table.data, 1 + slot))
            function_type = context.call_conv.get_function_type(types.none, declared)
            given = cgutils.unpack_tuple(builder, values[1])
            converted = [
                context.cast(builder, value, given_type, declared_type)
                for value, given_type, declared_type in zip(given, signature.args[1].types, declared)
            ]
            status, _ = context.call_conv.call_function(
                builder,
                builder.inttoptr(address, function_type.as_pointer()),
                types.none,
                declared,
                converted,
            )
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return context.get_dummy_value()

        return types.none(addresses, types.StarArgTuple.from_types(arguments)), codegen

    return call


TABLE = types.Array(types.int64, 1, "C")


def address_table(kernels, dtype, slots):
    """The table the driver's calls read: the size in bytes of a real number of `dtype`, then
    an address per kernel of `kernels` (in slot order): that of its code compiled for `dtype`
    for the kernels of `slots` (each must be compiled, or loaded, for it first), 0 for the
    others (a plan without their layer types never calls them)."""
    table = np.zeros(1 + len(kernels), dtype=np.int64)
    table[0] = np.dtype(dtype).itemsize
    for slot in slots:
        kernel = kernels[slot]
        result = kernel.overloads[kernel_signature(kernel, numba.from_dtype(dtype))]
        if result.signature.return_type != types.none:
            raise TypeError(
                f"kernel {_name(kernel)} returns {result.signature.return_type}; a kernel returns nothing"
            )
        table[1 + slot] = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        if not table[1 + slot]:
            raise LookupError(f"kernel {_name(kernel)}: its machine code has no address")
    return table
