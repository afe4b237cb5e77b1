"""nnpipe: a command-pipeline neural-network workbench mirroring G'MIC's nn_lib."""

__version__ = "0.1.0"
