"""The image side of denoise_cnn and scale2x_cnn (nnpipe.commands.cnn_pipelines) against G'MIC
3.6.3 itself: with a stand-in for the network that G'MIC can run as commands too, nnpipe's
pipeline and G'MIC's script of the same steps (its stdlib's denoise_cnn and scale2x_cnn, the
network call replaced) give the same image. The networks are checked where they are read."""

import gmic
import numpy as np
import pytest

from nnpipe.commands.cnn_pipelines import denoise, scale2x
from nnpipe.commands.images import resized
from nnpipe.errors import ImageError


def run_gmic(script, image):
    """G'MIC's result of `script` on `image` (s,d,h,w), in the same layout."""
    images = gmic.ImageList([gmic.Image(np.ascontiguousarray(image.transpose(3, 2, 1, 0)))])
    gmic.Gmic().run(script, images)
    (result,) = images
    return np.asarray(result.as_numpy()).transpose(3, 2, 1, 0)


def photo_like(channels, depth=1, height=23, width=30, seed=0):
    """A smooth picture with noise, 0-255 (opacity channels a ramp)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((channels, depth, height, width), np.float32)
    for c in range(channels):
        for z in range(depth):
            image[c, z] = (
                128 + 90 * np.cos(x * 0.3 + y * 0.2 * (c + 1) + z) + rng.normal(0, 12, (height, width))
            )
    if channels in (2, 4):
        image[-1] = np.linspace(0, 255, width, dtype=np.float32)
    return np.clip(image, 0, 255)


# The denoiser's stand-in: each patch scaled by 1 + its noise level/100 (so levels matter).
GMIC_DENOISE = """split_opacity l[0] {{
  slices 50% w,h,s:=w,h,s to_rgb img2patches {P},{overlap},3
  if {level} 1,1,100%,1,{level} else +l. {{ s z foreach {{ (${{-std_noise}}) k. }} a z max 1 }} fi
  r[1] {P},{P},100%,3 *[1] 0.01 +[1] 1 /[0] 255 *[0] [1] rm[1]
  r 100%,100%,100%,$s patches2img $w,$h,{overlap},50% * 255 c 0,255
}} a c"""


def stand_in_denoiser(patches, levels):
    return patches * (levels * np.float32(0.01) + np.float32(1))[np.newaxis, :, np.newaxis, np.newaxis]


@pytest.mark.parametrize(
    "channels,depth,level,size",
    [(3, 1, 0, 16), (3, 1, 7, 16), (1, 1, 0, 12), (2, 1, 0, 8), (4, 1, 0.5, 20), (3, 3, 0, 10), (3, 1, 0, 3)],
)
def test_denoise_steps_as_gmic(channels, depth, level, size):
    image = photo_like(channels, depth)
    expected = run_gmic(GMIC_DENOISE.format(P=size, overlap=size // 4, level=level), image)
    got = denoise(image, stand_in_denoiser, level, size)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3


def test_denoise_hands_the_network_every_patch_at_once():
    """One call, the patches (3,N,P,P) on 0-1 and one noise level each (at least 1)."""
    calls = []

    def record(patches, levels):
        calls.append((patches.shape, levels.copy(), float(patches.max())))
        return patches

    denoise(photo_like(3, height=40, width=50), record, 0, 16)
    ((shape, levels, highest),) = calls
    assert shape == (3, 20, 16, 16)  # step 16 - 4: ceil(50/12) x ceil(40/12) = 5 x 4 patches
    assert levels.shape == (20,) and levels.min() >= 1 and highest <= 1


# scale2x_cnn's steps with the network replaced by a nearest 2x of (Y - 128) / 10.
GMIC_SCALE2X = """rgb2ycbcr +r 200%,200%,1,100%,3 channels.. 0
  +img2patches.. 32,8,3 r. 64,64,100%,1,1 -. 128 *. 0.1
  patches2img. {{-2,[w,h]}},16 *. {sharpness}
  j. ..,0,0,0,0,-1 j.. . r. 50%,50%,1,1,2 -[-3,-1] r.. 200%,200%,1,1,3 j. ..,0,0,0,0,-1 rm..
  ycbcr2rgb."""


def stand_in_upscaler(patches):
    doubled = resized(patches, (64, 64, patches.shape[1], 1))
    return (doubled - np.float32(128)) * np.float32(0.1)


@pytest.mark.parametrize(
    "channels,height,width,sharpness",
    [(3, 40, 50, 1.25), (3, 23, 30, 0.5), (1, 40, 50, 1.25), (2, 33, 20, 2), (4, 40, 50, 1.25)],
)
def test_scale2x_steps_as_gmic(channels, height, width, sharpness):
    image = photo_like(channels, height=height, width=width)
    expected = run_gmic(GMIC_SCALE2X.format(sharpness=sharpness), image)
    got = scale2x(image, stand_in_upscaler, sharpness)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3


def test_scale2x_sharpness_0_is_gmics_linear_upscale_without_the_network():
    image = photo_like(5, depth=2)
    expected = run_gmic("r 200%,200%,1,100%,3", image)
    assert np.abs(scale2x(image, None, 0) - expected).max() < 1e-3


@pytest.mark.parametrize(
    "run,image",
    [
        (lambda image: denoise(image, stand_in_denoiser), photo_like(5)),
        (lambda image: scale2x(image, stand_in_upscaler), photo_like(5)),
        (lambda image: scale2x(image, stand_in_upscaler), photo_like(3, depth=2)),
    ],
)
def test_images_the_networks_cannot_take_are_refused(run, image):
    """5 channels (not G, GA, RGB or RGBA); a 3D colour image for scale2x (not cut into patches)."""
    with pytest.raises(ImageError):
        run(image)
