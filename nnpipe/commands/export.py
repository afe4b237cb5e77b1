"""nn_export: the current network's forward pass as an ONNX model (needs the `onnx` package,
the nnpipe[onnx] extra). The conversion is in nnpipe.nn.onnx_export."""

from nnpipe.commands.inference import default_output
from nnpipe.commands.samples import parameter_images
from nnpipe.errors import UserError
from nnpipe.images import atomic
from nnpipe.registry import FILES, LayerName, Text, command


@command(
    "nn_export",
    group=FILES,
    takes_selection=False,
    params=[
        Text("file", help="the .onnx file to write"),
        LayerName("output", ".", help="layer the model computes ('.' = what the latest loss compares)"),
    ],
)
def nn_export(ctx, selection, path, output):
    """Write the current network's forward pass, from its inputs to OUTPUT, as an ONNX model.

    Exported layers: fc, nlfc, every activation, normalize (its inference-time affine map:
    the running statistics), dropout (nothing at inference), clone, add, mul, append, split,
    crop, reshape, rename, conv2d/conv3d (stride, dilation, border shrink, the four boundary
    conditions), tconv2d, max and average pooling, patchdown/patchup, resize, distance.
    Inputs and output are NCHW tensors, (N, s, h, w) for a size w,h,1,s, or NCDHW,
    (N, s, d, h, w) when the depth d is above 1; N is the number of samples. A vector
    input nn_input IN,n is (N, 1, 1, n), an fc output of n values (N, n, 1, 1). The model's
    inputs and output are named after their layers. Needs the onnx package (nnpipe[onnx])."""
    try:
        from nnpipe.nn import onnx_export
    except ImportError:
        raise UserError("nn_export needs the onnx package: pip install 'nnpipe[onnx]'") from None
    network = ctx.network()
    target = default_output(network) if output == "." else network.resolve(output)
    if network.modules[target].layer.inputs == 0:
        raise UserError(f"'{target}' is an input: there is nothing to compute")
    model = onnx_export.build(network, target, parameter_images(ctx, network.plan(target)))
    atomic.write_file(path, lambda temporary: onnx_export.onnx.save(model, temporary))
    ctx.notice(f"wrote '{target}' of network '{network.name}' to {path} ({len(model.graph.node)} ONNX nodes)")
