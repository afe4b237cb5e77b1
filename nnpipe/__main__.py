"""The `nnpipe` program (also `python -m nnpipe`)."""

import gc

from nnpipe import interrupt


def run_as_program():
    """The command line, with Ctrl-C handled from before the first heavy import (see
    nnpipe.interrupt.handled_for_the_program).

    The garbage collector is off during the imports, and their objects are then frozen out of
    its view (Numba's: hundreds of thousands, long-lived, never garbage), which each of its full
    passes would walk. Once the command line has run, what is left is frozen too: Python's
    shutdown runs passes over every object, 0.1-0.25 s measured, a quarter of a warm run. The
    objects are still freed, each when its module goes."""
    gc.disable()
    with interrupt.handled_for_the_program():
        from nnpipe.cli import main

        gc.freeze()
        gc.enable()
        try:
            main()
        finally:
            gc.freeze()


if __name__ == "__main__":
    run_as_program()
