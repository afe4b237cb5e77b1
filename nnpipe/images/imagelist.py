"""The shared, ordered list of named float32 images of shape (s, d, h, w)."""

import numpy as np

from nnpipe.errors import UserError
from nnpipe.numbers import FLOAT32_MAX


def as_image(array):
    """Return `array` as a C-contiguous float32 (s, d, h, w) array."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim > 4:
        raise UserError(f"an image has at most 4 dimensions (got {array.ndim})")
    while array.ndim < 4:
        array = array[np.newaxis]
    return np.ascontiguousarray(array)


def beyond_float32(values):
    """The index of the first finite value that float32 cannot hold, or None."""
    outside = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    return tuple(int(i) for i in np.argwhere(outside)[0]) if np.any(outside) else None


MAX_VALUES = 2**31  # per image; far beyond this machine class's memory, well inside int64 index math


def check_size(size, what):
    """Refuse to make `what` of G'MIC size `size` (w, h, d, s) when it would hold too many values."""
    values = 1
    for n in size:
        values *= n
    if values > MAX_VALUES:
        count = (
            f"{values:.3g}" if values < 1e300 else f"about 1e{len(str(values)) - 1}"
        )  # (no float holds it)
        raise UserError(
            f"{what} of size {','.join(str(n) for n in size)} is too large ({count} values; at most 2^31)"
        )


def gmic_size(array):
    """The size as users see it, in G'MIC order (w, h, d, s)."""
    s, d, h, w = array.shape
    return w, h, d, s


class ImageList:
    """Ordered images, each with a (possibly empty) name."""

    def __init__(self):
        self.images = []
        self.names = []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]

    def append(self, array, name=""):
        self.images.append(as_image(array))
        self.names.append(name)
        return len(self.images) - 1

    def replace(self, index, array):
        self.images[index] = as_image(array)

    def splice(self, index, arrays, names):
        """Replace image [index] by several images, in order, named `names`."""
        self.images[index : index + 1] = [as_image(array) for array in arrays]
        self.names[index : index + 1] = list(names)

    def remove(self, indices):
        for index in sorted(set(indices), reverse=True):
            del self.images[index]
            del self.names[index]

    def keep(self, indices):
        self.images = [self.images[i] for i in indices]
        self.names = [self.names[i] for i in indices]

    def find(self, name):
        """Index of the last image called `name`, or None."""
        for index in range(len(self.names) - 1, -1, -1):
            if self.names[index] == name:
                return index
        return None

    def get(self, name):
        index = self.find(name)
        return None if index is None else self.images[index]

    def set(self, name, array):
        """Replace the image called `name`, or append it if there is none."""
        index = self.find(name)
        if index is None:
            return self.append(array, name)
        self.replace(index, array)
        return index
