"""Convolution and pooling commands, mirroring nn_lib's 2023 API (plus nn_tconv2d)."""

from nnpipe.commands.network import (ACTIVATION, IN, IN_OR_PREVIOUS, LEARNING_MODE, OUT, add,
                                     learning_mode, network_command, residual)
from nnpipe.commands.registry import Choice, Int
from nnpipe.nn import boundary
from nnpipe.nn.layers import Rename
from nnpipe.nn.layers.conv import Convolution
from nnpipe.nn.layers.nonlinearity import Nonlinearity
from nnpipe.nn.layers.normalize import Normalize
from nnpipe.nn.layers.pool import AveragePool, MaxPool

CHANNELS = Int("nb_channels", low=1, help="output channels")
KERNEL_SIZE = Int("kernel_size", 3, low=1)
STRIDE = Int("stride", 1, low=1)
DILATION = Int("dilation", 1, low=1)
SHRINK = Int("border_shrink", 0, low=0, help="output pixels dropped at each border")
BOUNDARY = Choice("boundary_conditions", "neumann", choices=boundary.NAMES,
                  help="what the kernels read outside the input: 0 dirichlet (zeros),"
                       " 1 neumann (nearest edge), 2 periodic, 3 mirror")
CONV = (OUT, IN, CHANNELS, KERNEL_SIZE, STRIDE, DILATION, SHRINK, BOUNDARY)
RESCONV = (OUT, IN_OR_PREVIOUS, KERNEL_SIZE, DILATION, BOUNDARY)
PATCH_SIZE = Int("patch_size", 2, low=2)


def convolution(dimensions, channels, kernel_size, stride, dilation, shrink, boundary_conditions,
                learning_mode):
    return Convolution(channels=channels, kernel_size=kernel_size, stride=stride,
                       dilation=dilation, shrink=shrink,
                       boundary_conditions=boundary.NAMES.index(boundary_conditions),
                       learning_mode=learning_mode, dimensions=dimensions)


def conv_block(ctx, out, source, dimensions, geometry, activation=None, normalized=False):
    """OUT_convNd, then (OUT_normalize, channel by channel,) then OUT: a nonlinearity, or a
    rename when there is no activation."""
    name = add(ctx, f"{out}_conv{dimensions}d", convolution(dimensions, *geometry), [source])
    if normalized:
        name = add(ctx, f"{out}_normalize", Normalize(channelwise=True, learning_mode=3), [name])
    add(ctx, out, Nonlinearity(activation=activation) if activation else Rename(), [name])


def resconv_block(ctx, out, source, dimensions, kernel_size, dilation, boundary_conditions,
                  learning_mode, activation=None, normalized=False):
    """nn_lib's resconv: OUT = IN + conv(IN), the convolution keeping the input's channels."""
    def branch(size):
        return (f"conv{dimensions}d", convolution(dimensions, size[3], kernel_size, 1, dilation, 0,
                                                  boundary_conditions, learning_mode))
    residual(ctx, out, source, branch, "channelwise" if normalized else None, activation)


@network_command("nn_conv2d", *CONV, LEARNING_MODE)
def nn_conv2d(ctx, selection, out, source, *geometry):
    """Add a 2D convolution: modules OUT_conv2d (weights image: one row per output channel,
    the kernels of every input channel then the bias) and OUT.

    Output size: (w/stride - 2 border_shrink, h/stride - 2 border_shrink, d, nb_channels)."""
    conv_block(ctx, out, source, 2, geometry)


@network_command("nn_conv2dnl", *CONV, ACTIVATION, LEARNING_MODE)
def nn_conv2dnl(ctx, selection, out, source, *geometry_activation):
    """Add a 2D convolution then a nonlinearity: OUT_conv2d, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    conv_block(ctx, out, source, 2, (*geometry, learning_mode), activation)


@network_command("nn_conv2dnnl", *CONV, ACTIVATION, LEARNING_MODE)
def nn_conv2dnnl(ctx, selection, out, source, *geometry_activation):
    """Add a 2D convolution, a channel-by-channel normalize and a nonlinearity: OUT_conv2d,
    OUT_normalize, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    conv_block(ctx, out, source, 2, (*geometry, learning_mode), activation, normalized=True)


@network_command("nn_conv3d", *CONV, LEARNING_MODE)
def nn_conv3d(ctx, selection, out, source, *geometry):
    """Add a 3D convolution (k x k x k kernels): OUT_conv3d and OUT.

    Output size: (w/stride - 2 border_shrink, h/..., d/..., nb_channels)."""
    conv_block(ctx, out, source, 3, geometry)


@network_command("nn_conv3dnl", *CONV, ACTIVATION, LEARNING_MODE)
def nn_conv3dnl(ctx, selection, out, source, *geometry_activation):
    """Add a 3D convolution then a nonlinearity: OUT_conv3d, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    conv_block(ctx, out, source, 3, (*geometry, learning_mode), activation)


@network_command("nn_conv3dnnl", *CONV, ACTIVATION, LEARNING_MODE)
def nn_conv3dnnl(ctx, selection, out, source, *geometry_activation):
    """Add a 3D convolution, a channel-by-channel normalize and a nonlinearity: OUT_conv3d,
    OUT_normalize, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    conv_block(ctx, out, source, 3, (*geometry, learning_mode), activation, normalized=True)


@network_command("nn_resconv2d", *RESCONV, LEARNING_MODE)
def nn_resconv2d(ctx, selection, out, source, *geometry):
    """Add a residual 2D convolution, OUT = IN + conv(IN) (same channels, stride 1):
    OUT_clone0/1, OUT_conv2d, OUT."""
    resconv_block(ctx, out, source, 2, *geometry)


@network_command("nn_resconv2dnl", *RESCONV, ACTIVATION, LEARNING_MODE)
def nn_resconv2dnl(ctx, selection, out, source, *geometry_activation):
    """Add a residual 2D convolution then a nonlinearity: OUT_clone0/1, OUT_conv2d, OUT_add, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    resconv_block(ctx, out, source, 2, *geometry, learning_mode, activation)


@network_command("nn_resconv2dnnl", *RESCONV, ACTIVATION, LEARNING_MODE)
def nn_resconv2dnnl(ctx, selection, out, source, *geometry_activation):
    """Add a residual 2D convolution with a channel-by-channel normalize, then a nonlinearity:
    OUT_clone0/1, OUT_conv2d, OUT_normalize, OUT_add, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    resconv_block(ctx, out, source, 2, *geometry, learning_mode, activation, normalized=True)


@network_command("nn_resconv3d", *RESCONV, LEARNING_MODE)
def nn_resconv3d(ctx, selection, out, source, *geometry):
    """Add a residual 3D convolution, OUT = IN + conv(IN): OUT_clone0/1, OUT_conv3d, OUT."""
    resconv_block(ctx, out, source, 3, *geometry)


@network_command("nn_resconv3dnl", *RESCONV, ACTIVATION, learning_mode(1))
def nn_resconv3dnl(ctx, selection, out, source, *geometry_activation):
    """Add a residual 3D convolution then a nonlinearity: OUT_clone0/1, OUT_conv3d, OUT_add, OUT.

    Its learning_mode defaults to 1 (weights only, biases at 0), unlike its siblings' 3: so
    nn_lib 2023 declares it, and a network saved by nn_lib rebuilds the same."""
    *geometry, activation, learning_mode = geometry_activation
    resconv_block(ctx, out, source, 3, *geometry, learning_mode, activation)


@network_command("nn_resconv3dnnl", *RESCONV, ACTIVATION, LEARNING_MODE)
def nn_resconv3dnnl(ctx, selection, out, source, *geometry_activation):
    """Add a residual 3D convolution with a channel-by-channel normalize, then a nonlinearity:
    OUT_clone0/1, OUT_conv3d, OUT_normalize, OUT_add, OUT."""
    *geometry, activation, learning_mode = geometry_activation
    resconv_block(ctx, out, source, 3, *geometry, learning_mode, activation, normalized=True)


@network_command("nn_tconv2d", OUT, IN, CHANNELS, KERNEL_SIZE, Int("stride", 2, low=1), DILATION,
                 LEARNING_MODE)
def nn_tconv2d(ctx, selection, out, source, channels, kernel_size, stride, dilation, learning_mode):
    """Add a transposed 2D convolution, the adjoint of a conv2d of the same stride (zeros
    outside) plus biases: modules OUT_tconv2d (weights image, laid out as conv2d's) and OUT.

    Output size: (w * stride, h * stride, d, nb_channels); upsamples what a strided conv2d
    downsampled."""
    layer = Convolution(channels=channels, kernel_size=kernel_size, stride=stride,
                        dilation=dilation, shrink=0, boundary_conditions=boundary.DIRICHLET,
                        learning_mode=learning_mode, dimensions=2, transposed=True)
    name = add(ctx, f"{out}_tconv2d", layer, [source])
    add(ctx, out, Rename(), [name])


@network_command("nn_maxpool2d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_maxpool2d(ctx, selection, out, source, patch_size):
    """Add 2D max pooling: the largest value of each p x p patch; size w/p,h/p,d,s."""
    add(ctx, out, MaxPool(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_maxpool3d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_maxpool3d(ctx, selection, out, source, patch_size):
    """Add 3D max pooling over p x p x p patches; size w/p,h/p,d/p,s."""
    add(ctx, out, MaxPool(patch_size=patch_size, dimensions=3), [source])


@network_command("nn_avgpool2d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_avgpool2d(ctx, selection, out, source, patch_size):
    """Add 2D average pooling, as nn_lib: a moving-average resize to w/p,h/p,d,s (when p does
    not divide the size, each output averages a fractional box)."""
    add(ctx, out, AveragePool(patch_size=patch_size, dimensions=2), [source])


@network_command("nn_avgpool3d", OUT, IN_OR_PREVIOUS, PATCH_SIZE)
def nn_avgpool3d(ctx, selection, out, source, patch_size):
    """Add 3D average pooling: a moving-average resize to w/p,h/p,d/p,s."""
    add(ctx, out, AveragePool(patch_size=patch_size, dimensions=3), [source])
