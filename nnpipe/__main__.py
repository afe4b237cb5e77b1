"""The `nnpipe` program (also `python -m nnpipe`)."""

from nnpipe import interrupt


def run_as_program():
    """The command line, with Ctrl-C handled from before the first heavy import (see
    nnpipe.interrupt.handled_for_the_program)."""
    with interrupt.handled_for_the_program():
        from nnpipe.cli import main
        main()


if __name__ == "__main__":
    run_as_program()
