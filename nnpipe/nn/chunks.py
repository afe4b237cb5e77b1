"""How a batch is cut into chunks, a chunk's inputs loaded, the weights checked: the kernels the compiled
engine of every network shares (see nnpipe.nn.steps).

Buffers hold one chunk of samples feature-major: value k of the module at offset o, for the
chunk's sample c, is at (o + k) * width + c, so the layers' inner loops run over the samples
(or, in image-shaped layers, over runs of pixels of all the samples) and vectorize."""

import numba

from nnpipe.nn.layers import dropout


@numba.njit(cache=True)
def load_chunk(feeds, samples, rows, acts, width):
    """Copy the samples `rows` into the input buffers of a chunk; zeros fill a chunk's
    columns beyond them."""
    column = 0
    for f in range(feeds.shape[0]):
        offset, length = feeds[f, 0], feeds[f, 1]
        for j in range(length):
            target = acts[(offset + j) * width : (offset + j + 1) * width]
            for c in range(rows.size):
                target[c] = samples[rows[c], column + j]
            target[rows.size :] = 0
        column += length


@numba.njit(cache=True)
def sample_indices(seed, iteration, count, out):
    """Mini-batch `iteration`: sample indices drawn from a counter-based hash, so training
    resumed from a saved trainer state draws exactly the batches it would have drawn. A batch
    as large as the samples (nn_step) takes every sample once."""
    if out.size == count:
        for b in range(count):
            out[b] = b
        return
    for b in range(out.size):
        out[b] = int(dropout.uniform(seed, iteration, b - out.size) * count)


def chunk_width(batch, threads, largest):
    """Samples per chunk: the batch shared evenly among the threads, at most `largest` (a
    chunk's buffers stay in cache), never more than the samples there are."""
    return max(1, min(largest, -(-batch // threads)))


@numba.njit(cache=True)
def all_finite(values):
    """No value is infinite or NaN (x * 0 is 0 for finite x only): one branch-free pass."""
    finite = True
    for i in range(values.size):
        finite &= values[i] * 0 == 0
    return finite
