"""Network files: nn_save / nn_load in TIFF, PNG and G'MIC's .gmz, nn_store, nn_view; resuming training,
atomic saves (killed for real) and refusing bad files without touching anything."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from conftest import REPO, cli, run_items
from nn_helpers import build, interpreter
from PIL import Image, PngImagePlugin

from nnpipe.errors import UserError
from nnpipe.images import gmz
from nnpipe.nn import files
from nnpipe.nn.files import init_text, pictures

NETWORK = (
    "nn_init net nn_input IN,2 nn_fcnnl L1,IN,12 nn_resfcnl L2,L1 nn_dropout D,L2,0.2"
    " nn_fc OUT,D,3 nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,2e-3,adam"
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """A fixed samples file (x, y, r, g, b per pixel) so separate runs train on the same data."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("data") / "samples.npy"
    data = rng.uniform(-1, 1, size=(5, 1, 40, 1)).astype(np.float32)
    np.save(path, data)
    return path


def run(script, seed=0):
    interp = interpreter(seed)
    interp.run_source(script, "test.nnp")
    return interp


def state(interp):
    """Everything nn_load must leave alone when it fails."""
    return (
        list(interp.workspace.images.names),
        [a.copy() for a in interp.workspace.images.images],
        interp.workspace.current_network,
        {n: list(net.commands) for n, net in interp.workspace.networks.items()},
        {n: net.describe() for n, net in interp.workspace.networks.items()},
    )


def same_state(a, b):
    return (
        a[0] == b[0]
        and all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[1], b[1]))
        and a[2:] == b[2:]
    )


def network_images(interp):
    return {
        n: interp.workspace.images[i]
        for i, n in enumerate(interp.workspace.images.names)
        if n in interp.workspace.network_images()
    }


def printed(interp):
    return interp.workspace.networks[interp.workspace.current_network].describe()


@pytest.fixture(scope="module")
def trained(samples, tmp_path_factory):
    """A small trained network saved in both formats, with and without trainer data."""
    folder = tmp_path_factory.mktemp("saved")
    interp = run(
        f"input {samples} {NETWORK} nn_train 20,8"
        f" nn_save {folder}/net.tif nn_save {folder}/net.png nn_save {folder}/weights.tif,0"
        f" nn_save {folder}/net.gmz"
    )
    return interp, folder


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["net.tif", "net.gmz"])
def test_lossless_round_trip_is_exact(trained, name):
    original, folder = trained
    loaded = run(f"nn_load {folder}/{name}")
    assert loaded.workspace.current_network == "net"
    assert printed(loaded) == printed(original)
    assert loaded.workspace.networks["net"].commands == original.workspace.networks["net"].commands
    want, got = network_images(original), network_images(loaded)
    assert set(got) == set(want) and "T" in got and "L1_fc_m" in got and "OUT_fc_v" in got
    for name, image in want.items():
        assert got[name].shape == image.shape and got[name].dtype == np.float32
        assert np.array_equal(got[name], image), name


def test_png_round_trip_within_a_65535th_of_the_range(trained):
    original, folder = trained
    loaded = run(f"nn_load {folder}/net.png")
    assert printed(loaded) == printed(original)
    want, got = network_images(original), network_images(loaded)
    assert set(got) == set(want)
    for name, image in want.items():
        assert got[name].shape == image.shape
        tolerance = (image.max() - image.min()) / 65535 + 1e-6 * np.abs(image).max()
        assert np.max(np.abs(got[name] - image)) <= tolerance, name
    assert np.array_equal(got["T"], want["T"])  # small images (trainer states) are kept exactly


def test_png_stack_is_a_folder_of_16_bit_files_with_text_chunks(trained):
    original, folder = trained
    stack = folder / "net.png"
    names = sorted(os.listdir(stack))
    assert names[0] == "000_L1_fc.png" and names[-1] == "012_T.png" and len(names) == 13
    with Image.open(stack / names[0]) as first:
        assert first.mode.startswith("I;16")
        manifest = json.loads(first.text["nnpipe-network"])
        own = json.loads(first.text["nnpipe-image"])
        pixels = np.asarray(first)
    assert manifest["network"] == "net" and manifest["commands"][0] == "nn_input IN,2"
    assert own["name"] == "L1_fc" and own["size"] == [3, 12, 1, 1]
    weights = original.workspace.images.get("L1_fc")
    assert own["min"] == float(weights.min()) and own["max"] == float(weights.max())
    assert pixels.min() == 0 and pixels.max() == 65535


def test_tifffile_reads_the_network_page_by_page(trained):
    original, folder = trained
    path = folder / "net.tif"
    with tifffile.TiffFile(path) as tif:
        pages = list(tif.pages)
        assert len(pages) == 13
        for index, page in enumerate(pages):
            info = json.loads(page.description)
            name = page.tags["PageName"].value
            assert info["name"] == name
            image = original.workspace.images.get(name)
            s, d, h, w = image.shape
            assert info["size"] == [w, h, d, s] and page.dtype == np.float32
            assert np.array_equal(tifffile.imread(path, key=index), image.reshape(s * d * h, w))
        assert json.loads(pages[0].description)["nnpipe_network"]["network"] == "net"
    with Image.open(path) as picture:  # another ordinary reader
        picture.seek(2)
        assert np.array_equal(np.asarray(picture), original.workspace.images.get("L2_fc")[0, 0])


def test_input_gives_the_named_weight_images_back(trained):
    original, folder = trained
    loaded = run_items("input", str(folder / "weights.tif"))
    assert loaded.names == ["L1_fc", "L1_normalize", "L2_fc", "OUT_fc"]
    for name, image in zip(loaded.names, loaded.workspace.images.images):
        assert np.array_equal(image, original.workspace.images.get(name))


def test_inference_after_load_gives_the_same_outputs(trained, samples):
    original, folder = trained
    before = run(f"input {samples} nn_load {folder}/net.tif input (0,0.5;1,-1^0.2,0.3;0,1) nn_eval")
    # the same network run in the process that trained it
    original.run_source("input (0,0.5;1,-1^0.2,0.3;0,1) nn_eval", "test.nnp")
    assert np.array_equal(before.workspace.images[-1], original.workspace.images[-1])
    original.workspace.images.remove([len(original.workspace.images) - 2, len(original.workspace.images) - 1])


# --- resuming training ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["tif", "gmz", "variable"])
def test_training_resumes_exactly(samples, tmp_path, how):
    whole = run(f"input {samples} {NETWORK} nn_train 200,8")
    if how != "variable":
        run(f"input {samples} {NETWORK} nn_train 100,8 nn_save {tmp_path}/half.{how}")
        second = run(f"input {samples} nn_load {tmp_path}/half.{how} nn_train 100,8", seed=99)
    else:  # kept in a variable, then the network is rebuilt from scratch and trained further
        second = run(
            f"input {samples} {NETWORK} nn_train 100,8 nn_store half"
            f" nn_init net nn_input X,1 nn_load half nn_train 100,8"
        )
    want, got = network_images(whole), network_images(second)
    assert set(got) == set(want) and "L1_fc_v" in got
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert got["T"].reshape(-1)[0] == 200  # iteration counter


@pytest.mark.parametrize("name", ["net.tif", "net.gmz"])
def test_load_without_trainer_data_starts_a_fresh_trainer(trained, name):
    original, folder = trained
    loaded = run(f"nn_load {folder}/{name},0")
    assert printed(loaded) == printed(original)
    assert np.array_equal(loaded.workspace.images.get("L2_fc"), original.workspace.images.get("L2_fc"))
    assert (
        loaded.workspace.images.get("T").reshape(-1)[0] == 0
        and not loaded.workspace.images.get("L2_fc_m").any()
    )
    from_weights_only = run(f"nn_load {folder}/weights.tif")  # saved without trainer data
    assert from_weights_only.workspace.images.get("T").reshape(-1)[0] == 0


def test_load_replaces_the_network_of_that_name(trained):
    _, folder = trained
    interp = run(
        "input 2,2 name data nn_init other nn_input A,1 nn_fc B,A,2"
        " nn_init net nn_input IN,5 nn_fc OLD,IN,4 nn_fc L2_fc,OLD,2"
        f" nn_select other nn_load {folder}/net.tif"
    )
    assert interp.workspace.current_network == "net"
    assert "OLD_fc" not in interp.workspace.images.names  # the replaced network's weights
    assert interp.workspace.images.names.count("L2_fc") == 1
    assert {"data", "B_fc"} <= set(interp.workspace.images.names)  # other images are kept
    assert interp.workspace.networks["other"].commands == ["nn_input A,1", "nn_fc B,A,2"]
    assert interp.workspace.networks["net"].commands[1] == "nn_fcnnl L1,IN,12"


def test_saved_network_can_be_saved_again(trained, tmp_path):
    _, folder = trained
    run(f"nn_load {folder}/net.tif nn_save {tmp_path}/again.tif")
    assert (tmp_path / "again.tif").read_bytes() == (folder / "net.tif").read_bytes()


def test_formats_keep_images_of_any_size(tmp_path):
    rng = np.random.default_rng(3)
    images = {
        "W": rng.normal(size=(2, 3, 4, 5)).astype(np.float32),
        "C": np.full((1, 1, 70, 1), 0.25, np.float32),
        "N": np.array([[[[1.0, np.inf, -np.inf, np.nan] + [0.5] * 70]]], np.float32),
    }
    saved = files.NetworkFile(
        "n", ["nn_input A,1"], [files.Entry(k, files.PARAMETER, v) for k, v in images.items()]
    )
    for name in ("x.tif", "x.png"):
        files.write(str(tmp_path / name), saved)
        back = files.read(str(tmp_path / name) + ("/" if name == "x.png" else ""))
        assert back.network == "n" and back.commands == ["nn_input A,1"]
        assert [(e.name, e.role, e.image.shape) for e in back.entries] == [
            (k, files.PARAMETER, v.shape) for k, v in images.items()
        ]
        got = {e.name: e.image for e in back.entries}
        if name == "x.tif":
            assert all(np.array_equal(got[k], v, equal_nan=True) for k, v in images.items())
        else:
            assert np.max(np.abs(got["W"] - images["W"])) <= np.ptp(images["W"]) / 65535
            assert np.array_equal(got["C"], images["C"])
            assert got["N"][0, 0, 0, :4].tolist() == [1.0, 1.0, 0.5, 0.5]  # non-finite: range ends
    with tifffile.TiffFile(tmp_path / "x.tif") as tif:
        assert tif.pages[0].shape == (2 * 3 * 4, 5)


# --- nn_view ----------------------------------------------------------------------------------


def test_view_writes_8_bit_pictures(trained, tmp_path):
    original, _ = trained
    original.run_source(f"nn_view {tmp_path}/views nn_view {tmp_path}/small,10", "test.nnp")
    for name in ("L1_fc", "L1_normalize", "L2_fc", "OUT_fc"):
        with Image.open(tmp_path / "views" / f"{name}.png") as picture:
            assert picture.mode == "L" and max(picture.size) >= 256
            pixels = np.asarray(picture)
        h, w = original.workspace.images.get(name).shape[2:]
        zoom = pixels.shape[0] // h
        assert pixels.shape == (h * zoom, w * zoom) and pixels.min() == 0 and pixels.max() == 255
        weights = original.workspace.images.get(name)[0, 0].astype(np.float64)
        expected = np.rint((weights - weights.min()) * 255 / (weights.max() - weights.min()))
        assert np.array_equal(pixels[::zoom, ::zoom], expected)
    with Image.open(tmp_path / "small" / "L2_fc.png") as picture:
        assert picture.size == (13, 12)


@pytest.mark.parametrize("command, tile_width", [("nn_conv2d", 3), ("nn_conv3d", 9)])
def test_view_shows_conv_kernels_as_tiles(tmp_path, command, tile_width):
    """A row of tiles per output channel, a column per input channel (a 3D kernel's three
    slices side by side), 1-pixel gaps, the biases in the last column."""
    interp = build(f"nn_init nn_input IN,6,6,3,2 {command} C,IN,4,3")
    name = f"C_conv{command[-2]}d"
    kernel_size = 3 ** int(command[-2])
    weights = np.arange(4 * (2 * kernel_size + 1), dtype=np.float32).reshape(1, 1, 4, -1)
    interp.workspace.images.set(name, weights)
    interp.run_source(f"nn_view {tmp_path},1", "test.nnp")
    pixels = np.asarray(Image.open(tmp_path / f"{name}.png")).astype(np.float64)
    assert pixels.shape == (4 * 4 - 1, 2 * (tile_width + 1) + 1)
    scale = 255 / weights.max()
    row = weights[0, 0, 2]  # output channel 2
    kernel = row[kernel_size : 2 * kernel_size].reshape(-1, 3, 3)  # its input channel 1
    tile = pixels[8:11, tile_width + 1 : 2 * tile_width + 1]
    assert np.array_equal(tile, np.rint(np.hstack(list(kernel)) * scale))
    assert pixels[8, -1] == np.rint(row[-1] * scale)  # the bias
    assert pixels[11].max() == 0 and pixels[:, tile_width].max() == 0  # the gaps


def test_picture_tiles_channels_and_depth():
    image = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    pixels = pictures.picture(image, 1)
    assert pixels.shape == (2 * 2 + 1, 3 * 2 + 2) and pixels.dtype == np.uint8


# --- atomic saves -----------------------------------------------------------------------------

BIG = (
    "nn_init net nn_input IN,1024 nn_fc A,IN,2048 nn_fc B,A,2048 nn_loss_mse L,B,GT nn_trainer T,L,1e-3,adam"
)


def temporaries(folder):
    return [e for e in os.scandir(folder) if e.name.startswith(".nnpipe-")]


def written(entry):
    if entry.is_dir():
        return sum(e.stat().st_size for e in os.scandir(entry.path)) > 1 << 20
    return entry.stat().st_size > 1 << 20


@pytest.mark.parametrize("name", ["net.tif", "net.png"])
def half_written(folder):
    """True if the temporary left beside the target is an incomplete network."""
    left = temporaries(folder)
    if len(left) != 1:
        return False
    try:
        run(f"nn_load {left[0].path}")
    except UserError:
        return True
    return False


@pytest.mark.parametrize("name", ["net.tif", "net.png", "net.gmz"])
def test_a_save_killed_midway_leaves_the_previous_file_intact(trained, tmp_path, name):
    original, _ = trained
    target = tmp_path / name
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for _attempt in range(3):
        original.run_source(f"nn_save {target}", "test.nnp")  # the good file to overwrite
        before = run(f"nn_load {target}")
        process = subprocess.Popen(
            [sys.executable, "-m", "nnpipe", "-q", *BIG.split(), "nn_save", str(target)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                if any(written(e) for e in temporaries(tmp_path)):
                    process.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.0005)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
        if process.returncode == -signal.SIGKILL and half_written(tmp_path):
            break  # killed while the new network was half written
        for entry in temporaries(tmp_path):  # too late: clean up and try again
            shutil.rmtree(entry.path) if entry.is_dir() else os.unlink(entry.path)
    else:
        pytest.skip("could not catch the save in the middle")
    after = run(f"nn_load {target}")  # the half-written temporary beside it does not matter
    assert printed(after) == printed(before)
    for key, image in network_images(before).items():
        assert np.array_equal(network_images(after)[key], image)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [name]
    # and the next save goes through, replacing the file and removing the dead temporary
    before.run_source(f"nn_save {target}", "test.nnp")
    assert printed(run(f"nn_load {target}")) == printed(before)
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("name", ["net.tif", "net.png"])
def test_ctrl_c_during_a_save_keeps_the_previous_file_and_removes_the_temporary(trained, tmp_path, name):
    original, _ = trained
    target = tmp_path / name
    original.run_source(f"nn_save {target}", "test.nnp")
    before = run(f"nn_load {target}")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for _attempt in range(3):
        process = subprocess.Popen(
            [sys.executable, "-m", "nnpipe", "-q", *BIG.split(), "nn_save", str(target)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if any(written(e) for e in temporaries(tmp_path)):
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.0005)
        stderr = process.communicate(timeout=60)[1]
        if process.returncode == 130:
            break
        original.run_source(f"nn_save {target}", "test.nnp")  # too late: put the old one back
    else:
        pytest.skip("could not catch the save in the middle")
    assert stderr == "nnpipe: interrupted\n"
    assert temporaries(tmp_path) == []
    assert printed(run(f"nn_load {target}")) == printed(before)


def test_successful_saves_leave_no_temporary(trained, tmp_path):
    original, _ = trained
    original.run_source(
        f"nn_save {tmp_path}/a.tif nn_save {tmp_path}/a.png nn_save {tmp_path}/a.png"
        f" nn_save {tmp_path}/a.tif nn_save {tmp_path}/a.gmz nn_save {tmp_path}/a.gmz",
        "test.nnp",
    )
    assert sorted(os.listdir(tmp_path)) == ["a.gmz", "a.png", "a.tif"]


def test_save_refuses_to_replace_a_foreign_folder_or_file(trained, tmp_path):
    original, _ = trained
    (tmp_path / "photos.png").mkdir()
    (tmp_path / "photos.png" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="not an nnpipe network"):
        original.run_source(f"nn_save {tmp_path}/photos.png", "test.nnp")
    assert os.listdir(tmp_path / "photos.png") == ["holiday.jpg"]
    Image.new("L", (2, 2)).save(tmp_path / "picture.png")
    with pytest.raises(UserError, match="a file is in the way"):
        original.run_source(f"nn_save {tmp_path}/picture.png", "test.nnp")
    with pytest.raises(UserError, match=r"\.gmz .*, \.tif, \.tiff .* or \.png"):
        original.run_source(f"nn_save {tmp_path}/net.cimgz", "test.nnp")
    original.run_source(f"nn_save {tmp_path}/missing/net.tif nn_save {tmp_path}/new/net.png", "test.nnp")
    assert (tmp_path / "missing" / "net.tif").is_file() and (tmp_path / "new" / "net.png").is_dir()


def test_save_without_a_network_is_an_error():
    with pytest.raises(UserError, match="no network"):
        run("nn_save x.tif")


# --- bad files --------------------------------------------------------------------------------


def rewrite_tiff(source, target, change):
    """Copy a network TIFF, letting `change(manifest, descriptions, planes)` edit it."""
    with tifffile.TiffFile(source) as tif:
        descriptions = [json.loads(p.description) for p in tif.pages]
        planes = [p.asarray() for p in tif.pages]
    change(descriptions[0]["nnpipe_network"], descriptions, planes)
    with tifffile.TiffWriter(target) as tif:
        for description, plane in zip(descriptions, planes):
            tif.write(plane, description=json.dumps(description), metadata=None)


def bad_tiffs(folder, good):
    data = good.read_bytes()
    cases = {
        "truncated.tif": data[: len(data) // 2],
        "header_only.tif": data[:16],
        "empty.tif": b"",
        "text.tif": b"just some text, not a TIFF at all\n",
    }
    with tifffile.TiffFile(good) as tif:
        offset = tif.pages[2].dataoffsets[0] + 20  # inside the values of L2_fc
    corrupt = bytearray(data)
    corrupt[offset : offset + 8] = b"\x7f" * 8
    cases["corrupt.tif"] = bytes(corrupt)
    for name, content in cases.items():
        (folder / name).write_bytes(content)
    tifffile.imwrite(folder / "photo.tif", np.full((8, 8, 3), 200, np.uint8), photometric="rgb")
    run(f"input 4,4,1,1,0.5 output {folder}/images.tif")
    rewrite_tiff(
        good, folder / "foreign_command.tif", lambda m, d, p: m["commands"].insert(0, "output stolen.png")
    )
    rewrite_tiff(
        good, folder / "wrong_size.tif", lambda m, d, p: m["commands"].__setitem__(1, "nn_fcnnl L1,IN,13")
    )
    rewrite_tiff(good, folder / "missing_page.tif", lambda m, d, p: (m["images"].pop(2), d.pop(2), p.pop(2)))
    rewrite_tiff(good, folder / "version.tif", lambda m, d, p: m.__setitem__("version", 99))
    # 3 KB that would ask for 8.5 GB of weights (46001 x 46000 float32) if it were believed
    rewrite_tiff(
        good,
        folder / "huge_layer.tif",
        lambda m, d, p: m["commands"].extend(["nn_input BIG,46000", "nn_fc HUGE,BIG,46000"]),
    )
    rewrite_tiff(
        good, folder / "line_break.tif", lambda m, d, p: m["commands"].insert(0, "output\nnnpipe: fake line")
    )
    return {
        "truncated.tif": "truncated",
        "header_only.tif": "",
        "empty.tif": "",
        "text.tif": "",
        "corrupt.tif": "damaged",
        "photo.tif": "without a network description",
        "images.tif": "no network",
        "foreign_command.tif": "'output' in its commands",
        "wrong_size.tif": "rebuilding the network failed at 'nn_fcnnl L1,IN,13'",
        "missing_page.tif": "holds no weights for layer 'L2_fc'",
        "version.tif": "version 99",
        "missing.tif": "no such file",
        "huge_layer.tif": "failed at 'nn_fc HUGE,BIG,46000': it holds no weights for layer 'HUGE_fc'",
        "line_break.tif": "'output\\nnnpipe:' in its commands",
    }


def bad_pngs(folder, good):
    cases = {}

    def stack(name, damage, expected):
        shutil.copytree(good, folder / name)
        damage(folder / name)
        cases[name] = expected

    def truncate(path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    def corrupt_pixels(path):
        with Image.open(path) as image:
            pixels, info = np.asarray(image).copy(), image.text
        pixels[0, 0] ^= 1
        chunks = PngImagePlugin.PngInfo()
        for key, value in info.items():
            chunks.add_itxt(key, value)
        Image.fromarray(pixels).save(path, pnginfo=chunks)

    stack("truncated.png", lambda p: truncate(p / "002_L2_fc.png"), "")
    stack(
        "incomplete.png",
        lambda p: os.unlink(p / "003_OUT_fc.png"),
        "'003_OUT_fc.png' (image 'OUT_fc') is missing",
    )
    stack("corrupt.png", lambda p: corrupt_pixels(p / "002_L2_fc.png"), "damaged (checksum mismatch)")

    def swap(first, second):
        os.replace(first, first.with_name("swap"))
        os.replace(second, first)
        os.replace(first.with_name("swap"), second)

    stack(
        "swapped.png",
        lambda p: swap(p / "001_L1_normalize.png", p / "002_L2_fc.png"),
        "does not belong to this network",
    )
    Image.new("RGB", (8, 8), (10, 200, 30)).save(folder / "photo.png")
    cases["photo.png"] = "a PNG without a network description"
    (folder / "photos.png").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "photos.png" / "001_cat.png")
    cases["photos.png"] = "a PNG without a network description"
    (folder / "empty.png").mkdir()
    cases["empty.png"] = "holds no network PNG files"
    (folder / "jpeg.png").write_bytes((folder / "photo.png").read_bytes().replace(b"PNG", b"JPG"))
    cases["jpeg.png"] = ""
    cases["missing.png"] = "no such file or folder"
    return cases


def bad_gmzs(folder, good):
    data = good.read_bytes()
    images = gmz.decode(data)
    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 8] = b"\x7f" * 8  # inside some image's zlib data
    cases = {
        "truncated.gmz": (data[: len(data) // 2], "truncated"),
        "corrupt.gmz": (bytes(corrupt), "damaged"),
        "text.gmz": (b"just some text\n", "not a G'MIC/CImg image list"),
        "empty.gmz": (b"", "not a G'MIC/CImg image list"),
        "trailing.gmz": (data + b"\0", "unexpected bytes after the last image"),
    }

    def rewritten(change):
        names, arrays = zip(*change(list(images)))
        return gmz.encode(arrays, names)

    cases["images.gmz"] = (
        rewritten(lambda i: [e for e in i if e[0] != "_nn_init"]),
        "holds no _nn_init image",
    )
    cases["foreign_command.gmz"] = (
        rewritten(lambda i: i[:-1] + [("_nn_init", gmz.text_image("nn_init net output stolen.png"))]),
        "'output' in its _nn_init text",
    )
    cases["wrong_size.gmz"] = (
        rewritten(
            lambda i: (
                i[:-1]
                + [
                    (
                        "_nn_init",
                        gmz.text_image(
                            init_text.init_text(
                                files.NetworkFile("net", ["nn_input IN,2", "nn_fcnnl L1,IN,13"], [])
                            )
                        ),
                    )
                ]
            )
        ),
        "rebuilding the network failed at 'nn_fcnnl L1,IN,13'",
    )
    cases["missing_weights.gmz"] = (
        rewritten(lambda i: [e for e in i if e[0] != "L2_fc"]),
        "holds no weights for layer 'L2_fc'",
    )
    cases["twice.gmz"] = (rewritten(lambda i: [i[0]] + i), "two images named")
    for name, (content, _) in cases.items():
        (folder / name).write_bytes(content)
    cases = {name: expected for name, (_, expected) in cases.items()}
    cases["missing.gmz"] = "no such file"
    return cases


@pytest.fixture(scope="module")
def bad_files(trained, tmp_path_factory):
    _, good = trained
    folder = tmp_path_factory.mktemp("bad")
    cases = bad_tiffs(folder, good / "net.tif")
    cases.update(bad_pngs(folder, good / "net.png"))
    cases.update(bad_gmzs(folder, good / "net.gmz"))
    return folder, cases


BAD = [
    "truncated.tif",
    "header_only.tif",
    "empty.tif",
    "text.tif",
    "corrupt.tif",
    "photo.tif",
    "images.tif",
    "foreign_command.tif",
    "wrong_size.tif",
    "missing_page.tif",
    "version.tif",
    "missing.tif",
    "huge_layer.tif",
    "line_break.tif",
    "truncated.png",
    "incomplete.png",
    "corrupt.png",
    "swapped.png",
    "photo.png",
    "photos.png",
    "empty.png",
    "jpeg.png",
    "missing.png",
    "truncated.gmz",
    "corrupt.gmz",
    "text.gmz",
    "empty.gmz",
    "trailing.gmz",
    "images.gmz",
    "foreign_command.gmz",
    "wrong_size.gmz",
    "missing_weights.gmz",
    "twice.gmz",
    "missing.gmz",
]


@pytest.mark.parametrize("name", BAD)
def test_a_bad_file_is_refused_and_changes_nothing(bad_files, name):
    folder, cases = bad_files
    interp = run(
        "input 3,3 name data nn_init net nn_input IN,2 nn_fc L1,IN,4"
        " nn_loss_mse LOSS,L1,GT nn_trainer T,LOSS nn_init other nn_input A,1"
    )
    before, random_state = state(interp), interp.workspace.rng.bit_generator.state
    with pytest.raises(UserError) as info:
        interp.run_source(f"echo start\nnn_load {folder / name}", "demo.nnp")
    message = str(info.value)
    assert message.startswith(f"demo.nnp:2: nn_load: cannot load '{folder / name}': ")
    assert cases[name] in message and "\n" not in message
    assert same_state(before, state(interp)) and interp.workspace.rng.bit_generator.state == random_state


def test_bad_file_error_on_the_command_line(bad_files):
    folder, _ = bad_files
    result = cli("nn_load", folder / "truncated.tif")
    assert result.code == 1 and result.exception is None
    assert len(result.error_lines) == 1
    assert result.error_lines[0].startswith(
        f"nnpipe: error: <command line>:1: nn_load: cannot load '{folder / 'truncated.tif'}': "
    )
    assert "truncated" in result.error_lines[0]


def test_a_half_written_temporary_is_refused(trained, tmp_path):
    _, folder = trained
    data = (folder / "net.tif").read_bytes()
    (tmp_path / ".nnpipe-abc.tif").write_bytes(data[: len(data) - 100])
    with pytest.raises(UserError, match="truncated"):
        run(f"nn_load {tmp_path}/.nnpipe-abc.tif")


def test_stored_network_in_a_variable(trained):
    original, _ = trained
    original.run_source("nn_store snap,0", "test.nnp")
    text = original.lookup("snap")
    assert files.is_stored(text)
    loaded = run(f"snap={text} nn_load snap")
    assert printed(loaded) == printed(original)
    assert np.array_equal(loaded.workspace.images.get("L2_fc"), original.workspace.images.get("L2_fc"))
    with pytest.raises(UserError, match="cannot load variable 'broken': the stored network is damaged"):
        run(f"broken={text[:-5]}! nn_load broken")
    with pytest.raises(UserError, match="not an identifier|variable name"):
        run("nn_init nn_input A,1 nn_fc B,A,1 nn_store 1abc")
