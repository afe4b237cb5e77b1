"""Write a labelled folder of small grayscale shape pictures for examples/shapes.nnp:
FOLDER/circle/*.png, FOLDER/square/*.png, FOLDER/triangle/*.png.

    python scripts/make_shapes.py FOLDER [--count 500] [--size 32] [--seed 1]

Each picture holds one filled shape at a random size, position, rotation (squares and
triangles) and brightness on a random background, with gaussian noise; the same seed writes
the same pictures. Needs NumPy and Pillow only.
"""

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
SUPERSAMPLING = 4  # drawn larger then reduced, so edges are anti-aliased


def polygon(sides, centre, radius, angle):
    return [
        (
            centre[0] + radius * math.cos(angle + 2 * math.pi * k / sides),
            centre[1] + radius * math.sin(angle + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def draw_shape(kind, size, rng):
    """One picture (size x size, uint8) of a shape of kind `kind`."""
    big = size * SUPERSAMPLING
    background, foreground = rng.uniform(0, 90), rng.uniform(150, 255)
    picture = Image.new("F", (big, big), float(background))
    draw = ImageDraw.Draw(picture)
    # the circumradius: from a fifth to nearly half the picture, the shape kept inside it
    radius = rng.uniform(0.2, 0.42) * big
    centre = rng.uniform(radius, big - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        radius *= 0.8  # about the area of the square and triangle of the same circumradius
        draw.ellipse(
            [centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius],
            fill=float(foreground),
        )
    else:
        draw.polygon(polygon(4 if kind == "square" else 3, centre, radius, angle), fill=float(foreground))
    small = np.asarray(picture.resize((size, size), Image.BOX), dtype=np.float64)
    noisy = small + rng.normal(0, 12, small.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_shapes(folder, count=500, size=32, seed=1):
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    for kind in CLASSES:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            Image.fromarray(draw_shape(kind, size, rng)).save(folder / kind / f"{number:04d}.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--count", type=int, default=500, help="pictures per class (default 500)")
    parser.add_argument("--size", type=int, default=32, help="width and height (default 32)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write_shapes(args.folder, args.count, args.size, args.seed)
    print(f"wrote {3 * args.count} pictures to {args.folder}/{{{','.join(CLASSES)}}}")


if __name__ == "__main__":
    main()
