"""Round trips through image files, foreign files, damaged files and safe writing."""

import errno
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from conftest import run_script, script_error, values

from nnpipe.images import io as image_io

RAMP = ",".join(str(v) for v in range(256))


def umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- PNG, JPEG, BMP ---------------------------------------------------------------------------


def test_png_8bit_round_trip_keeps_0_to_255(work):
    run_script(f"i 16,16 fill {RAMP} o ramp.png")
    stored = iio.imread(work / "ramp.png")
    assert stored.dtype == np.uint8 and stored.shape == (16, 16)
    run = run_script("i ramp.png")
    assert run.names == ["ramp"]
    assert run.image().shape == (1, 1, 16, 16)
    assert run.image().dtype == np.float32
    assert np.array_equal(run.image().ravel(), np.arange(256, dtype=np.float32))


def test_png_8bit_clips_and_rounds(work):
    run = run_script("i (-5,0,12.6,255,256,1000) o c.png i c.png")
    assert values(run.image()) == [[0, 0, 13, 255, 255, 255]]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_keeps_channels_and_rows(work, channels):
    original = run_script(f"i 5,3,1,{channels} fill {RAMP} o pic.png").image()
    loaded = run_script("pic.png").image()
    assert loaded.shape == (channels, 1, 3, 5)
    assert np.array_equal(loaded, original)


def test_png_16bit_round_trip_keeps_integers_exactly(work):
    numbers = [0, 1, 255, 256, 1000, 32768, 65534, 65535]
    run_script(f"i 4,2 fill {','.join(map(str, numbers))} o deep.png,16")
    stored = iio.imread(work / "deep.png")
    assert stored.dtype == np.uint16
    loaded = run_script("deep.png").image()
    assert loaded.ravel().tolist() == numbers


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_16bit_keeps_every_channel_count_exactly(work, channels):
    numbers = [(v * 9973 + c * 101) % 65536 for c in range(channels) for v in range(6)]
    inline = "^".join(",".join(map(str, numbers[c * 6 : c * 6 + 6])) for c in range(channels))
    run = run_script(f"({inline}) o deep.png,16 i deep.png")
    assert np.array_equal(run.image(0), run.image(1))
    assert iio.imread(work / "deep.png").shape[:2] == (1, 6)


def test_png_16bit_of_the_astronaut_photo(work):
    from conftest import REPO

    run = run_script(f"i {REPO}/examples/data/astronaut256.png mul 257 o a16.png,16 i a16.png")
    assert run.image(1).shape == (3, 1, 256, 256)
    assert np.array_equal(run.image(0), run.image(1))


def test_png_16bit_clips_to_65535(work):
    assert values(run_script("(-1,70000) o d.png,16 d.png").image()) == [[0, 65535]]


def test_png_several_images_become_numbered_files_that_read_back(work):
    run_script("i 2,2,1,1,10 i 3,3,1,1,20 o many.png")
    run = run_script("i many_*.png")
    assert run.names == ["many_000", "many_001"]
    assert [float(image.max()) for image in run.images] == [10, 20]


def test_jpeg_reads_back_approximately(work):
    original = run_script(f"i 32,32,1,3 fill {RAMP} n 20,230 o photo.jpg").image()
    loaded = run_script("photo.jpg").image()
    assert loaded.shape == (3, 1, 32, 32)
    assert np.abs(loaded - original).mean() < 4
    assert loaded.min() >= 0 and loaded.max() <= 255


def test_bmp_round_trip(work):
    original = run_script(f"i 7,5,1,3 fill {RAMP} o pic.bmp").image()
    assert np.array_equal(run_script("pic.bmp").image(), original)


@pytest.mark.parametrize(
    "script, message",
    [
        ("i 2,2,2 o vol.png", "PNG holds 2D images, this one is 2,2,2,1 (depth > 1)"),
        ("i 2,2,1,5 o five.png", "PNG cannot hold 5 channels"),
        ("i 2,2,1,2 o two.jpg", "JPG cannot hold 2 channels"),
        ("i 2,2 o deep.jpg,16", "16-bit output needs .png"),
        ("i 2,2 o x.png,12", "bits must be one of 8|16"),
        ("i 2,2 o picture.xyz", "unknown format '.xyz'"),
        ("i 2,2 o noextension", "unknown format 'no extension'"),
    ],
)
def test_write_errors_are_one_line_user_errors(work, script, message):
    error = script_error(script)
    assert message in error.message
    assert error.command == "output"
    assert "\n" not in str(error)
    assert list(work.iterdir()) == []  # nothing half-written


def test_output_creates_missing_folders(work):
    run_script("i 2,2,1,1,7 o new/deeper/x.png")
    assert (work / "new" / "deeper" / "x.png").is_file()


def test_output_under_a_file_is_a_one_line_error(work):
    (work / "plain").write_text("not a folder")
    error = script_error("i 2,2 o plain/x.png")
    assert "cannot create folder" in error.message and "\n" not in str(error)


# --- TIFF -------------------------------------------------------------------------------------


def test_tiff_holds_several_float_images_exactly(work):
    written = run_script(
        'i 5,4 noise 1 nm. plain i 3,2,4,6 noise 100 nm. "with space" i 1,1,1,1,-2.5e-7 o all.tif', seed=1
    )
    assert sorted(p.name for p in work.iterdir()) == ["all.tif"]
    loaded = run_script("i all.tif p")
    assert loaded.names == ["plain", "with space", "[-2.5e-7]"]  # G'MIC names a blank by its value
    assert [image.shape for image in loaded.workspace.images] == [(1, 1, 4, 5), (6, 4, 2, 3), (1, 1, 1, 1)]
    for before, after in zip(written.workspace.images, loaded.workspace.images):
        assert after.dtype == np.float32
        assert np.array_equal(before, after)
    assert loaded.lines[1].startswith("[1] with space: 3,2,4,6 ")


def test_tiff_written_by_nnpipe_reads_as_plain_float_pages_elsewhere(work):
    written = run_script("i 3,3 noise 1 i 3,2,4,6 noise 1 o both.tif", seed=4)
    with tifffile.TiffFile(work / "both.tif") as tif:
        assert len(tif.pages) == 1 + 6 * 4
        assert all(page.dtype == np.float32 for page in tif.pages)
        assert all(page.samplesperpixel == 1 for page in tif.pages)  # grey pages, not RGB
        assert np.array_equal(tif.series[1].asarray().reshape(6, 4, 2, 3), written.image(1))


def test_tiff_keeps_values_outside_0_255(work):
    loaded = run_script("(-1e6,0.125,3e9) o v.tiff v.tiff").image(1)
    assert values(loaded) == [[-1e6, 0.125, 3e9]]


def test_tiff_selection_writes_only_selected_images(work):
    run_script("i 1,1 nm. a i 2,2 nm. b i 3,3 nm. c o[0,2] some.tif")
    assert run_script("some.tif").names == ["a", "c"]


def test_tiff_images_are_selectable_by_name_after_loading(work):
    run_script("i 2,2,1,1,1 nm. weights i 3,3,1,1,2 nm. bias o net.tif")
    assert run_script("net.tif e {iM#0} k[bias] e {w}").lines == ["1", "3"]


def test_foreign_rgb_tiff(work):
    picture = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4 % 256).astype(np.uint8)
    tifffile.imwrite(work / "rgb.tif", picture)
    run = run_script("rgb.tif")
    assert run.names == ["rgb"]
    assert run.image().shape == (3, 1, 4, 5)
    assert np.array_equal(run.image(), np.moveaxis(picture, 2, 0)[:, np.newaxis].astype(np.float32))


def test_foreign_planar_rgb_tiff_reads_like_the_contiguous_one(work):
    picture = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 4 % 256).astype(np.uint8)
    tifffile.imwrite(work / "contig.tif", picture, photometric="rgb")
    tifffile.imwrite(
        work / "planar.tif", np.moveaxis(picture, 2, 0), photometric="rgb", planarconfig="separate"
    )
    run = run_script("contig.tif planar.tif")
    assert [image.shape for image in run.images] == [(3, 1, 4, 5), (3, 1, 4, 5)]
    assert np.array_equal(run.image(0), run.image(1))


def test_foreign_float_stack_gives_one_image_per_page(work):
    stack = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    tifffile.imwrite(work / "stack.tif", stack, photometric="minisblack")
    with tifffile.TiffFile(work / "stack.tif") as tif:
        assert len(tif.pages) == 3
    run = run_script("stack.tif")
    assert len(run.images) == 3
    for page, image in zip(stack, run.images):
        assert image.shape == (1, 1, 4, 5)
        assert np.array_equal(image[0, 0], page)


def test_foreign_16bit_gray_tiff_keeps_its_range(work):
    tifffile.imwrite(work / "gray.tif", np.array([[0, 300], [65535, 7]], np.uint16))
    assert values(run_script("gray.tif").image()) == [[0, 300], [65535, 7]]


# --- NPY --------------------------------------------------------------------------------------


def test_npy_round_trip_is_exact(work):
    written = run_script("i 3,4,2,5 noise 10 o cube.npy", seed=2).image()
    stored = np.load(work / "cube.npy")
    assert stored.dtype == np.float32 and stored.shape == (5, 2, 4, 3)
    run = run_script("cube.npy")
    assert run.names == ["cube"]
    assert np.array_equal(run.image(), written)


def test_foreign_npy_of_integers_in_two_dimensions(work):
    np.save(work / "grid.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    image = run_script("grid.npy").image()
    assert image.shape == (1, 1, 2, 3) and image.dtype == np.float32
    assert values(image) == [[0, 1, 2], [3, 4, 5]]


# --- reading errors ---------------------------------------------------------------------------


def test_missing_file(work):
    error = script_error("e start\ni nothere.png")
    assert error.where == "test.nnp:2"
    assert error.command == "input"
    assert error.message == "file 'nothere.png' not found"


def test_unknown_extension(work):
    (work / "notes.txt").write_text("hello")
    error = script_error("i notes.txt")
    assert "cannot read 'notes.txt': unknown format '.txt'" in error.message


def test_folder_is_not_an_image(work):
    (work / "folder.png").mkdir()
    assert "is a folder" in script_error("i folder.png").message


def _valid_file(work, name):
    run_script(f"i 16,16,1,3 fill {RAMP} o {name}")
    return (work / name).read_bytes()


@pytest.mark.parametrize("name", ["bad.png", "bad.tif", "bad.jpg", "bad.npy"])
def test_garbage_file_is_a_one_line_user_error(work, name):
    (work / name).write_bytes(b"this is not an image at all\x00\x01\x02" * 3)
    error = script_error(f"i {name}")
    assert f"cannot read '{name}'" in error.message
    assert "\n" not in str(error)


@pytest.mark.parametrize("name", ["cut.png", "cut.tif", "cut.npy"])
def test_truncated_file_is_a_one_line_user_error(work, name):
    data = _valid_file(work, name)
    (work / name).write_bytes(data[: len(data) // 2])
    error = script_error(f"i {name}")
    assert f"cannot read '{name}'" in error.message
    assert "\n" not in str(error)


def test_empty_file_is_a_user_error(work):
    (work / "empty.png").write_bytes(b"")
    assert "cannot read 'empty.png'" in script_error("i empty.png").message


def test_npy_of_text_is_refused(work):
    np.save(work / "words.npy", np.array(["a", "b"]))
    assert "not numbers" in script_error("i words.npy").message


def test_npy_with_five_dimensions_is_refused(work):
    np.save(work / "five.npy", np.zeros((1, 1, 1, 2, 2), np.float32))
    assert "5 dimensions (at most 4)" in script_error("i five.npy").message


# --- safe writing -----------------------------------------------------------------------------


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".nnpipe-")]


def test_failed_write_keeps_previous_file_and_leaves_no_temporary(work, monkeypatch):
    run_script("i 2,2,1,1,1 o keep.tif")
    before = (work / "keep.tif").read_bytes()

    def disk_full(temporary, images, names):
        with open(temporary, "wb") as handle:
            handle.write(b"II*\x00half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_io, "_write_tiff", disk_full)
    error = script_error("i 9,9,1,1,9 o keep.tif")
    assert "cannot write 'keep.tif': No space left on device" in error.message
    assert (work / "keep.tif").read_bytes() == before
    assert _leftovers(work) == []


def test_interrupted_write_keeps_previous_file_and_leaves_no_temporary(work, monkeypatch):
    run_script("i 2,2,1,1,1 o keep.npy")
    before = (work / "keep.npy").read_bytes()

    def interrupted(temporary, image):
        with open(temporary, "wb") as handle:
            handle.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(image_io, "_write_npy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_script("i 9,9 o keep.npy")
    assert (work / "keep.npy").read_bytes() == before
    assert _leftovers(work) == []


def test_write_onto_a_folder_fails_cleanly(work):
    (work / "taken.png").mkdir()
    error = script_error("i 2,2 o taken.png")
    assert "cannot write 'taken.png'" in error.message
    assert (work / "taken.png").is_dir()
    assert _leftovers(work) == []


def test_overwrite_replaces_the_file(work):
    run_script("i 2,2,1,1,1 o same.npy")
    run_script("i 3,3,1,1,2 o same.npy")
    assert np.load(work / "same.npy").shape == (1, 1, 3, 3)
    assert _leftovers(work) == []


def test_written_files_get_the_usual_permissions(work):
    run_script("i 2,2 o perm.png o perm.tif o perm.npy")
    for name in ("perm.png", "perm.tif", "perm.npy"):
        assert (work / name).stat().st_mode & 0o777 == 0o666 & ~umask()


def test_replacing_a_file_keeps_its_permission_bits(work):
    run_script("i 2,2 o kept.png o kept.tif o kept.npy")
    for name in ("kept.png", "kept.tif", "kept.npy"):
        os.chmod(work / name, 0o640)
    run_script("i 3,3 o kept.png o kept.tif o kept.npy")
    for name in ("kept.png", "kept.tif", "kept.npy"):
        assert (work / name).stat().st_mode & 0o7777 == 0o640, name


def test_a_read_only_file_is_not_replaced(work):
    run_script("i 2,2,1,1,1 o locked.npy")
    os.chmod(work / "locked.npy", 0o444)
    before = (work / "locked.npy").read_bytes()
    error = script_error("i 3,3 o locked.npy")
    assert "cannot write 'locked.npy': it is read-only" in error.message
    assert (work / "locked.npy").read_bytes() == before and _leftovers(work) == []


def test_a_symbolic_link_is_not_replaced_nor_followed(work):
    run_script("i 2,2,1,1,1 o real.npy")
    os.symlink("real.npy", work / "link.npy")
    before = (work / "real.npy").read_bytes()
    error = script_error("i 3,3 o link.npy")
    assert "cannot write 'link.npy': it is a symbolic link to 'real.npy'" in error.message
    assert (work / "link.npy").is_symlink() and (work / "real.npy").read_bytes() == before


@pytest.mark.parametrize(
    "target", ["/proc/nnpipe.png", "/proc/nnpipe.tif", "/proc/nnpipe.npy", "/proc/self/nnpipe/x.png"]
)
def test_a_path_that_cannot_be_written_is_one_user_error(target):
    error = script_error(f"i 2,2 o {target}")
    assert f"cannot write '{target}'" in error.message and "\n" not in str(error)


def test_a_folder_without_write_permission_is_one_user_error(work, monkeypatch):
    """(the tests run as root, for whom permissions do not stop a write: the refusal is simulated
    where the system would raise it)"""

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    trained = "(1^2) nn_init nn_input IN,1 nn_fc OUT,IN,1 nn_loss_mse L,OUT,GT nn_trainer T,L nn_train 2,1"
    run_script(trained)  # the engine's compile cache is written before writes are denied
    monkeypatch.setattr("tempfile.mkstemp", denied)
    monkeypatch.setattr("tempfile.mkdtemp", denied)
    for script in (
        "i 2,2 o out/x.png",
        "i 2,2 o out/x.tif",
        "nn_init nn_input IN,2 nn_fc OUT,IN,1 nn_save out/net.tif",
        "nn_init nn_input IN,2 nn_fc OUT,IN,1 nn_save out/net.png",
        f"{trained} nn_plot out/loss.png",
    ):
        error = script_error(script)
        assert "cannot write '" in error.message and "Permission denied" in error.message, script


def test_a_later_save_removes_the_temporaries_of_dead_runs(work):
    import subprocess
    import sys
    import zlib

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(finished.stdout)
    tag = f"{zlib.crc32(b'result.png'):08x}"
    stale = work / f".nnpipe-{dead}-abc123-{tag}.png"
    stale.write_bytes(b"half a picture" * 1000)
    alive = work / f".nnpipe-{os.getppid()}-def456-{tag}.png"  # a running process's: kept
    alive.write_bytes(b"in progress")
    other = work / f".nnpipe-{dead}-ghi789-{zlib.crc32(b'other.png'):08x}.png"  # another target's
    other.write_bytes(b"x")
    run_script("i 2,2 o result.png")
    assert sorted(_leftovers(work)) == sorted([alive.name, other.name])
