"""Data side: image-shaped samples in stacks (nn_train, nn_step, nn_eval, tiling), loading
folders, CSV and NPY files, random patches, train/test splits, nn_classify, and the examples
built on them."""

import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from nnpipe.commands import inference, load_all
from nnpipe.commands import samples as sample_layout
from nnpipe.errors import UserError
from nnpipe.lang.interpreter import Interpreter


def interpreter(seed=0, **images):
    ctx = Interpreter(load_all(), seed=seed, quiet=True, out=io.StringIO(), err=io.StringIO())
    for name, image in images.items():
        ctx.workspace.images.append(image, name)
    return ctx


def run(ctx, text):
    ctx.run_source(text, "test.nnp")
    return ctx


def error(ctx, text):
    with pytest.raises(UserError) as info:
        run(ctx, text)
    return str(info.value)


def stack(samples):
    """(M, s, d, h, w) samples -> the (s, d*M, h, w) stack."""
    count, s, d, h, w = samples.shape
    return np.ascontiguousarray(samples.transpose(1, 0, 2, 3, 4)).reshape(s, count * d, h, w)


# --- stacks -------------------------------------------------------------------------------------


def brighter_top(count, seed=0):
    """2x2 samples, label 1 when the top row is brighter than the bottom one."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(size=(count, 1, 1, 2, 2)).astype(np.float32)
    labels = (samples[:, 0, 0, 0].sum(1) > samples[:, 0, 0, 1].sum(1)).astype(np.float32)
    return stack(samples), labels.reshape(1, count, 1, 1)


NET_2x2 = (
    "nn_init nn_input IN,2,2 nn_fcnl H,IN,16,tanh nn_fc OUT,H,1 nn_loss_mse LOSS,OUT,GT"
    " nn_trainer T,LOSS,1e-2,adam"
)


def test_image_shaped_samples_train_from_stacks_and_eval_returns_a_stack():
    samples, labels = brighter_top(400)
    ctx = run(interpreter(3, X=samples, Y=labels), f"{NET_2x2} nn_train[X,Y] 400,32 nn_eval[X]")
    prediction = ctx.workspace.images[-1]
    assert ctx.workspace.images.names[-1] == "OUT" and prediction.shape == (1, 400, 1, 1)
    assert np.mean((prediction.ravel() > 0.5) == labels.ravel()) > 0.95


def weights(ctx):
    return {
        name: ctx.workspace.images[i].copy()
        for i, name in enumerate(ctx.workspace.images.names)
        if name in ctx.workspace.network_images()
    }


def same_weights(first, second):
    return first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)


def test_without_a_selection_nn_train_takes_one_stack_per_feed():
    samples, labels = brighter_top(64)
    images = dict(photo=np.zeros((3, 1, 4, 4)), X=samples, Y=labels)
    implicit = run(interpreter(3, **images), f"{NET_2x2} nn_train 5,8")
    explicit = run(interpreter(3, **images), f"{NET_2x2} nn_train[X,Y] 5,8")
    assert len(implicit.workspace.network().trainers["T"].history) == 5
    assert same_weights(weights(implicit), weights(explicit))  # the same samples, the same steps
    assert (
        implicit.workspace.network().trainers["T"].history
        == explicit.workspace.network().trainers["T"].history
    )


def test_without_a_selection_vector_stacks_that_fit_are_taken_too(tmp_path):
    (tmp_path / "points.csv").write_text(
        "x,y,side\n"
        + "".join(
            f"{x},{y},{'left' if x < 0.5 else 'right'}\n" for x, y in np.random.default_rng(0).random((40, 2))
        )
    )
    network = (
        f"nn_load_csv {tmp_path}/points.csv,side nn_init nn_input IN,2"
        " nn_fc OUT,IN,2 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS"
    )
    implicit = run(interpreter(3), f"{network} nn_train 5,8")
    explicit = run(interpreter(3), f"{network} nn_train[points,points_labels] 5,8")
    assert len(implicit.workspace.network().trainers["T"].history) == 5
    assert same_weights(weights(implicit), weights(explicit))


def test_nn_step_uses_every_sample_of_the_stacks():
    samples, labels = brighter_top(16)
    ctx = run(interpreter(3, X=samples, Y=labels), f"{NET_2x2} nn_eval[X]")
    predicted = ctx.workspace.images[-1].ravel().astype(np.float64)
    ctx = run(ctx, "nn_step[X,Y]")
    assert ctx.workspace.images.get("T")[0, 0, 0, 0] == 1
    # the step's loss is the mean over all 16 samples (mse of one value each), before the update
    whole_batch = np.mean((predicted - labels.ravel()) ** 2)
    assert float(ctx.lookup("loss")) == pytest.approx(whole_batch, rel=1e-5)
    # and a batch of one draws a different loss: the 16 were not a random draw of 1
    single = run(interpreter(3, X=samples, Y=labels), f"{NET_2x2} nn_train[X,Y] 1,1")
    assert float(single.lookup("loss")) != pytest.approx(whole_batch, rel=1e-5)


def test_stack_rows_are_samples_in_s_d_h_w_order():
    samples = np.arange(3 * 2 * 2 * 3 * 4, dtype=np.float32).reshape(3, 2, 2, 3, 4)  # M=3, feed 4,3,2,2
    image = stack(samples)
    rows = sample_layout.from_stack(image, (4, 3, 2, 2), 3)
    assert np.array_equal(rows, samples.reshape(3, -1))
    assert np.array_equal(sample_layout.to_stack(rows, (4, 3, 2, 2)), image)


def test_eval_of_an_image_shaped_output_keeps_each_sample_in_place():
    samples = np.random.default_rng(0).normal(size=(5, 2, 3, 4, 6)).astype(np.float32)
    ctx = run(interpreter(X=stack(samples)), "nn_init nn_input IN,6,4,3,2 nn_nl OUT,IN,sqr nn_eval[X]")
    assert np.allclose(ctx.workspace.images[-1], stack(samples**2), rtol=1e-6)


def test_pixel_mode_stays_for_one_image_and_vector_feeds():
    samples = np.array([[[[0, 0, 1, 1]]], [[[0, 1, 0, 1]]], [[[0, 1, 1, 0]]]], dtype=np.float32)
    ctx = run(
        interpreter(S=samples),
        "nn_init nn_input IN,2 nn_fc OUT,IN,1 nn_loss_mse LOSS,OUT,GT"
        " nn_trainer T,LOSS nn_train 3,4 input (0,1;1,0^1,1;0,0) nn_eval.",
    )
    assert ctx.workspace.images[-1].shape == (1, 1, 2, 2)


def test_stacks_must_match_their_feeds_and_agree_on_the_number_of_samples():
    samples, labels = brighter_top(10)
    ctx = run(interpreter(X=samples, Y=labels, Y9=labels[:, :9], Z=np.zeros((1, 10, 3, 2))), NET_2x2)
    message = error(ctx, "nn_train[X,Y9] 1")
    assert message == (
        "test.nnp:1: nn_train: the stacks hold different numbers of samples: [0] 'X' 10, [2] 'Y9' 9"
    )
    assert "1 image selected but the network is fed 2 stacks (IN 2,2,1,1, GT 1,1,1,1)" in error(
        ctx, "nn_train[X] 1"
    )
    # selections are in list order, as in G'MIC: [Z,Y] feeds Y (image 1) to IN
    assert "image [1] 'Y' (1,1,10,1) is not a stack of IN samples: it needs size 2,2,M,1" in error(
        ctx, "nn_train[Z,Y] 1"
    )
    assert all("\n" not in error(ctx, text) for text in ("nn_train[X,Y9] 1", "nn_eval[Z]"))


# --- tiled evaluation ---------------------------------------------------------------------------


def box_filter(tiles):
    """3x3 sums with zeros outside: what a conv layer of radius 1 with dirichlet borders does."""
    padded = np.pad(tiles, [(0, 0)] * (tiles.ndim - 2) + [(1, 1), (1, 1)])
    h, w = tiles.shape[-2:]
    return sum(padded[..., dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3))


def test_a_large_image_is_evaluated_in_stitched_tiles(monkeypatch):
    """Tiles whose border pixels are wrong (a box filter sees zeros there) stitch into the box
    filter of the whole image, once the margins drop them."""

    def rows(self, samples):
        return box_filter(samples.reshape(-1, 2, 8, 8)).reshape(samples.shape[0], -1)

    monkeypatch.setattr(inference.Inference, "rows", rows)
    image = np.random.default_rng(0).normal(size=(2, 3, 37, 29)).astype(np.float32)  # 3 samples
    ctx = run(
        interpreter(X=image), "nn_init nn_input IN,8,8,1,2 nn_nl OUT,IN,linear nn_eval[X] nn_eval[X] .,1"
    )
    assert ctx.workspace.images[-2].shape == image.shape
    assert np.allclose(ctx.workspace.images[-2], box_filter(image), atol=1e-5)  # default margin: 2
    assert np.allclose(ctx.workspace.images[-1], box_filter(image), atol=1e-5)  # margin 1: just enough


def test_tiling_a_pointwise_network_gives_the_pointwise_result():
    image = np.random.default_rng(1).normal(size=(1, 1, 50, 70)).astype(np.float32)
    ctx = run(interpreter(X=image), "nn_init nn_input IN,16,16 nn_nl OUT,IN,sqr nn_eval[X]")
    assert np.allclose(ctx.workspace.images[-1], image**2, rtol=1e-6)


def test_tiling_errors():
    ctx = run(
        interpreter(small=np.zeros((1, 1, 8, 20)), big=np.zeros((1, 1, 20, 20))),
        "nn_init nn_input IN,16,16 nn_nl OUT,IN,sqr",
    )
    assert "smaller (8) than the network's input (16)" in error(ctx, "nn_eval[small]")
    assert "a tile margin of 8 leaves nothing of a 16-pixel tile" in error(ctx, "nn_eval[big] .,8")
    run(ctx, "nn_init nn_input IN,16,16 nn_fc OUT,IN,4")
    assert "tiling it needs an output of the input's width and height (got 1,1,1,4)" in error(
        ctx, "nn_eval[big]"
    )


# --- loading ------------------------------------------------------------------------------------


def write_picture(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_a_labelled_folder_loads_as_a_stack_with_one_hot_labels(tmp_path):
    write_picture(tmp_path / "data" / "cat" / "a.png", np.full((8, 6), 255))
    write_picture(tmp_path / "data" / "cat" / "b.png", np.full((4, 4), 51))
    write_picture(tmp_path / "data" / "dog" / "c.png", np.full((8, 6, 3), [255, 0, 0]))  # color to gray
    (tmp_path / "data" / "dog" / "notes.txt").write_text("not a picture")
    ctx = run(interpreter(), f"nn_load_folder {tmp_path}/data,3,2 e $classes")
    assert ctx.workspace.images.names == ["data", "data_labels"]
    samples, labels = ctx.workspace.images
    assert samples.shape == (1, 3, 2, 3) and labels.shape == (2, 3, 1, 1)
    assert np.allclose(samples[0, :, 0, 0], [1, 0.2, 1 / 3])
    assert labels[:, :, 0, 0].T.tolist() == [[1, 0], [1, 0], [0, 1]]
    assert ctx.workspace.out.getvalue().strip() == "cat,dog"


def test_a_labelled_folder_drops_alpha_whatever_picture_comes_first(tmp_path):
    write_picture(tmp_path / "data" / "a" / "rgba.png", np.full((4, 4, 4), [255, 0, 0, 128]))
    write_picture(tmp_path / "data" / "b" / "gray_alpha.png", np.full((4, 4, 2), [51, 255]))
    samples, _ = run(interpreter(), f"nn_load_folder {tmp_path}/data").workspace.images
    assert samples.shape == (3, 2, 4, 4)
    assert np.allclose(samples[:, :, 0, 0].T, [[1, 0, 0], [0.2, 0.2, 0.2]])


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    assert "folder 'nowhere' not found" in error(interpreter(), "nn_load_folder nowhere")
    assert "needs one sub-folder of pictures per class (no pictures in cat)" in error(
        interpreter(), f"nn_load_folder {tmp_path}/empty"
    )


def test_csv_with_header_and_label_column(tmp_path):
    (tmp_path / "iris.csv").write_text("a,b,kind\n1,2,virginica\n3,4,setosa\n\n5,6,virginica\n")
    ctx = run(interpreter(), f"nn_load_csv {tmp_path}/iris.csv,kind")
    assert ctx.workspace.images.names == ["iris", "iris_labels"]
    assert ctx.workspace.images[0].shape == (2, 3, 1, 1)
    assert ctx.workspace.images[0][:, :, 0, 0].T.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert ctx.workspace.images[1][:, :, 0, 0].T.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert ctx.lookup("classes") == "setosa,virginica"
    same = run(interpreter(), f"nn_load_csv {tmp_path}/iris.csv,-1")
    assert np.array_equal(same.workspace.images[1], ctx.workspace.images[1])


def test_csv_without_header_feeds_a_vector_input_in_either_mode(tmp_path):
    (tmp_path / "xor.csv").write_text("0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    ctx = run(
        interpreter(3),
        f"nn_load_csv {tmp_path}/xor.csv nn_init nn_input IN,2"
        " nn_fcnl H,IN,8,tanh nn_fc OUT,H,1 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam"
        " nn_train 1500,4",
    )
    assert ctx.workspace.images[0].shape == (3, 4, 1, 1)
    assert float(ctx.lookup("loss")) < 0.01


def test_csv_errors(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2\n\n3,x\n")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    assert "bad.csv' line 3: 'x' is not a number" in error(interpreter(), f"nn_load_csv {tmp_path}/bad.csv")
    assert "line 2: 1 value where the first row has 2" in error(
        interpreter(), f"nn_load_csv {tmp_path}/ragged.csv"
    )
    assert "has no column 'z' (2 columns)" in error(interpreter(), f"nn_load_csv {tmp_path}/bad.csv,z")


def test_npy_arrays_load_samples_first(tmp_path):
    rng = np.random.default_rng(0)
    features, pictures, color = rng.random((5, 3)), rng.random((5, 4, 6)), rng.random((5, 2, 4, 6))
    for name, array in (
        ("f", features),
        ("p", pictures),
        ("c", color),
        ("v", features[:, 0]),
        ("y", np.array([0, 2, 1, 1, 0])),
    ):
        np.save(tmp_path / f"{name}.npy", array)
    ctx = run(
        interpreter(),
        " ".join(f"nn_load_npy {tmp_path}/{n}.npy" for n in "fpcv") + f" nn_load_npy {tmp_path}/y.npy,1",
    )
    f, p, c, v, y = ctx.workspace.images
    assert np.allclose(f[:, :, 0, 0].T, features) and f.shape == (3, 5, 1, 1)
    assert np.allclose(p[0], pictures)
    assert np.allclose(c, color.transpose(1, 0, 2, 3))
    assert v.shape == (1, 5, 1, 1)
    assert y[:, :, 0, 0].argmax(0).tolist() == [0, 2, 1, 1, 0] and y.shape == (3, 5, 1, 1)
    assert ctx.lookup("classes") == "0,1,2"
    assert "must hold one class number" in error(interpreter(), f"nn_load_npy {tmp_path}/f.npy,1")


# --- patches and splits -------------------------------------------------------------------------


def ramp(height=40, width=50):
    """Value 1000*y + x: a patch's clean values tell where it was cut."""
    return (1000 * np.arange(height)[:, None] + np.arange(width)).astype(np.float32)[None, None]


def test_patches_are_crops_with_gaussian_noise_of_the_given_sigma():
    ctx = run(interpreter(7, image=ramp() / 1000), "nn_patches[image] 300,5,0.02,1")
    noisy, clean = ctx.workspace.images[-2:]
    assert ctx.workspace.images.names[-2:] == ["patches", "patches_clean"]
    assert noisy.shape == clean.shape == (1, 300, 5, 5)
    corner = clean[0, :, 0, 0] * 1000
    y, x = np.divmod(np.rint(corner).astype(int), 1000)
    assert np.allclose(
        clean[0] * 1000,
        ramp()[0, 0][y[:, None, None] + np.arange(5)[:, None], x[:, None, None] + np.arange(5)],
        atol=0.05,
    )
    assert y.max() <= 35 and x.max() <= 45 and len(set(zip(x, y))) > 200
    assert np.std(noisy - clean) == pytest.approx(0.02, rel=0.05)
    assert abs(np.mean(noisy - clean)) < 0.002


def test_patches_are_reproducible_with_the_seed_and_divided_by_max_value():
    script = "nn_patches[image] 20,8,25"
    first, again, other = (run(interpreter(seed, image=ramp()), script) for seed in (1, 1, 2))
    assert np.array_equal(first.workspace.images[-2], again.workspace.images[-2])
    assert not np.array_equal(first.workspace.images[-1], other.workspace.images[-1])
    assert first.workspace.images[-1].max() <= ramp().max() / 255 + 1e-4


def test_patches_errors():
    ctx = interpreter(image=ramp(4, 4))
    assert "image [0] 'image' of size 4,4,1,1 is smaller than the patches (5x5)" in error(
        ctx, "nn_patches[image] 3,5"
    )
    ctx.run_source("i 4,4,2 i 4,4,1,3", "test.nnp")
    assert "of size 4,4,2,1 is not 2D" in error(ctx, "nn_patches[1] 3,2")
    assert "of size 4,4,1,3 has 3 channels, the first 1" in error(ctx, "nn_patches[0,2] 3,2")
    assert "the patches stack of size 4,4,1000000000,1 is too large" in error(ctx, "nn_patches[0] 1e9,4")


def test_split_keeps_samples_and_labels_together():
    samples = np.arange(10, dtype=np.float32).repeat(4).reshape(1, 10, 2, 2)  # sample k is all k
    labels = np.arange(10, dtype=np.float32).reshape(1, 10, 1, 1) * 10
    ctx = run(interpreter(4, X=samples, Y=labels), "nn_split_samples[X,Y] 0.3")
    assert ctx.workspace.images.names == ["X", "Y", "X_test", "Y_test"]
    train, train_labels, test, test_labels = ctx.workspace.images
    assert train.shape == (1, 7, 2, 2) and test.shape == (1, 3, 2, 2) and test_labels.shape == (1, 3, 1, 1)
    assert np.array_equal(train[0, :, 0, 0] * 10, train_labels.ravel())
    assert np.array_equal(test[0, :, 0, 0] * 10, test_labels.ravel())
    assert sorted(np.concatenate([train[0, :, 0, 0], test[0, :, 0, 0]])) == list(range(10))


def test_split_of_a_pixel_mode_image_and_errors():
    ctx = run(interpreter(S=np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3)), "nn_split_samples 0.5")
    assert ctx.workspace.images[0].shape == ctx.workspace.images[1].shape == (2, 1, 3, 1)
    assert sorted(
        np.concatenate([ctx.workspace.images[0][0].ravel(), ctx.workspace.images[1][0].ravel()])
    ) == list(range(6))
    assert "holding out 0.01 of 3 samples leaves no held-out samples" in error(
        ctx, "nn_split_samples[0] 0.01"
    )
    deep = interpreter(A=np.zeros((1, 4, 1, 1)), B=np.zeros((1, 6, 1, 1)))
    assert "depth 6, not a multiple of the 4 samples" in error(deep, "nn_split_samples 0.5")


# --- classification -----------------------------------------------------------------------------


def identity_classifier(scores, truth, classes=3):
    """A network whose output is its input (an fc layer set to the identity), fed `scores`."""
    count = len(truth)
    labels = np.zeros((classes, count, 1, 1), dtype=np.float32)
    labels[truth, np.arange(count)] = 1
    ctx = interpreter(S=np.asarray(scores, np.float32).T.reshape(classes, count, 1, 1), L=labels)
    run(ctx, f"nn_init nn_input IN,{classes} nn_fc OUT,IN,{classes}")
    ctx.workspace.images.set("OUT_fc", np.hstack([np.eye(classes), np.zeros((classes, 1))])[None, None])
    return ctx


def test_classify_reports_accuracy_and_confusion_matrix():
    scores = [[5, 1, 0], [0, 2, 1], [0, 3, 1], [1, 0, 0], [0, 0, 9], [2, 0, 1]]
    ctx = identity_classifier(scores, [0, 1, 2, 0, 2, 1])
    run(ctx, "classes=circle,square,triangle nn_classify[S,L] e accuracy:$accuracy")
    out = ctx.workspace.out.getvalue().splitlines()
    assert out[0] == "accuracy: 66.67% (4 of 6)"
    assert out[1] == "confusion matrix (rows: true class, columns: predicted):"
    assert out[2].split() == ["circle", "square", "triangle"]
    assert [line.split() for line in out[3:6]] == [
        ["circle", "2", "0", "0"],
        ["square", "1", "1", "0"],
        ["triangle", "0", "1", "1"],
    ]
    assert out[6] == "accuracy:0.666667"
    assert ctx.workspace.images.names[-2:] == ["predicted", "confusion"]
    assert ctx.workspace.images[-2].ravel().tolist() == [0, 1, 1, 0, 2, 0]
    assert ctx.workspace.images[-1][0, 0].tolist() == [[2, 0, 0], [1, 1, 0], [0, 1, 1]]


def test_classify_class_names_and_errors():
    ctx = identity_classifier([[1, 0], [0, 1]], [0, 1], classes=2)
    run(ctx, "nn_classify[S,L] .,yes,no")
    assert ctx.workspace.out.getvalue().splitlines()[2].split() == ["yes", "no"]
    run(ctx, "nn_classify[S,L]")  # no $classes: numbers
    assert ctx.workspace.out.getvalue().splitlines()[-3].split() == ["0", "1"]
    assert "3 class names given for 2 classes" in error(ctx, "nn_classify[S,L] .,a,b,c")
    ctx.workspace.images.append(np.zeros((2, 3, 1, 1)), "wrong")
    assert "is not a stack of 2 labels of 2 classes" in error(ctx, "nn_classify[S,wrong]")


# --- examples -----------------------------------------------------------------------------------


def test_make_shapes_writes_a_reproducible_labelled_folder(tmp_path):
    for folder in ("a", "b"):
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "scripts" / "make_shapes.py"),
                str(tmp_path / folder),
                "--count",
                "4",
                "--size",
                "20",
                "--seed",
                "5",
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert [str(f) for f in files[:2]] == ["circle/0000.png", "circle/0001.png"] and len(files) == 12
    for name in files:
        first, second = (np.asarray(Image.open(tmp_path / f / name)) for f in "ab")
        assert first.shape == (20, 20) and np.array_equal(first, second)
