"""Reshape and split: layers whose output is a view of their input's values, so the plan gives
them no buffer and no kernel (aliases, like rename and clone). reshape keeps every value in
the same order under a new size; split's two parts are the first nb_channels0 channels and
the rest, which are contiguous since a sample's values are flattened channel after channel."""

from nnpipe.errors import UserError
from nnpipe.nn.layers import Layer, count, size_text


class Reshape(Layer):
    """options: size (w, h, d, s)."""
    kind = "reshape"
    alias = True

    def build(self, input_sizes):
        size = self.options["size"]
        if count(size) != count(input_sizes[0]):
            raise UserError(f"cannot reshape input ({size_text(input_sizes[0])}) to output"
                            f" ({size_text(size)}): not the same number of values")
        return size


class Split(Layer):
    """options: channels (nb_channels0), part (0: the first channels, 1: the rest)."""
    kind = "split"
    alias = True

    def build(self, input_sizes):
        (w, h, d, s), channels = input_sizes[0], self.options["channels"]
        if channels >= s:
            raise UserError(f"nb_channels0 must be less than the input's {s} channels"
                            f" (got {channels})")
        return (w, h, d, s - channels if self.options["part"] else channels)

    def alias_offset(self, input_sizes):
        w, h, d, _ = input_sizes[0]
        return self.options["part"] * w * h * d * self.options["channels"]
