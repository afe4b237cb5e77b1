"""Image commands: what they do to the shared list, value by value."""

import re

import numpy as np
import pytest
from conftest import run_script, script_error, values

from nnpipe.errors import UserError

# --- input ------------------------------------------------------------------------------------


def test_input_inline_values_rows_planes_and_channels():
    run = run_script("i (1,2,3;4,5,6) i (1,2;3,4/5,6;7,8) i (1,2^3,4^5,6)")
    rows, volume, channels = run.images
    assert rows.shape == (1, 1, 2, 3)
    assert values(rows) == [[1, 2, 3], [4, 5, 6]]
    assert volume.shape == (1, 2, 2, 2)
    assert volume[0, 1].tolist() == [[5, 6], [7, 8]]
    assert channels.shape == (3, 1, 1, 2)
    assert channels[:, 0, 0, :].tolist() == [[1, 2], [3, 4], [5, 6]]
    assert all(image.dtype == np.float32 for image in run.images)


def test_input_inline_accepts_negative_and_decimal_numbers():
    run = run_script("i (-1.5,2e2,.25)")
    assert values(run.image()) == [[-1.5, 200, 0.25]]


@pytest.mark.parametrize(
    "item, message",
    [
        ("(1,a)", "numbers"),
        ("(1,2", "closing ')'"),
    ],
)
def test_input_bad_inline_values(item, message):
    error = script_error(f"i {item}")
    assert message in error.message
    assert error.command == "input"


@pytest.mark.parametrize(
    "sizes, shape, value",
    [
        ("5", (1, 1, 1, 5), 0),
        ("5,4", (1, 1, 4, 5), 0),
        ("5,4,3", (1, 3, 4, 5), 0),
        ("5,4,3,2", (2, 3, 4, 5), 0),
        ("5,4,3,2,7.5", (2, 3, 4, 5), 7.5),
        ("2,2,1,1,-1", (1, 1, 2, 2), -1),
    ],
)
def test_input_blank_image(sizes, shape, value):
    image = run_script(f"i {sizes}").image()
    assert image.shape == shape
    assert np.all(image == value)


@pytest.mark.parametrize(
    "sizes, message",
    [
        ("0,2", "integers >= 1"),
        ("2.5,2", "integers >= 1"),
        ("100000,100000,1000", "too large"),
    ],
)
def test_input_bad_blank_image(sizes, message):
    assert message in script_error(f"i {sizes}").message


def test_input_missing_argument_is_an_error():
    error = script_error("i 1,1\ni")
    assert error.command == "input"
    assert "missing argument" in error.message
    assert error.where == "test.nnp:2"


def test_input_selection_copies_images_with_their_names():
    run = run_script("(1,2) nm. a (3) nm. b i [a] i [0,1] fill[2] 9")
    assert run.names == ["a", "b", "a_c1", "a_c1", "b_c1"]  # G'MIC's copy names
    assert values(run.image(0)) == [[1, 2]]  # a copy, not the same array
    assert values(run.image(2)) == [[9, 9]]
    assert values(run.image(4)) == [[3]]


def test_input_file_and_glob(work):
    for index in range(3):
        np.save(work / f"part{index}.npy", np.full((1, 1, 2, index + 1), index, np.float32))
    np.save(work / "other.npy", np.zeros((1, 1, 1, 1), np.float32))
    run = run_script("i part1.npy i part?.npy")
    assert run.names == ["part1", "part0", "part1", "part2"]  # the glob is sorted
    assert [image.shape[3] for image in run.images] == [2, 1, 2, 3]
    assert [float(image.max()) for image in run.images] == [1, 0, 1, 2]


def test_input_glob_matching_nothing_is_an_error(work):
    assert "no file matches 'nothing*.png'" in script_error("i nothing*.png").message


# --- output, remove, keep, name, print, echo ---------------------------------------------------


def test_output_writes_and_reports(work):
    run = run_script("i 3,2,1,1,9 o out.npy")
    assert (work / "out.npy").exists()
    assert np.load(work / "out.npy").shape == (1, 1, 2, 3)
    assert run.err.strip() == "wrote out.npy"
    assert run.out == ""


def test_output_quiet_hides_the_notice(work):
    run = run_script("i 3,2 o out.npy", quiet=True)
    assert run.err == ""
    assert (work / "out.npy").exists()


def test_output_of_an_empty_list_is_an_error(work):
    assert "no image to write" in script_error("o out.png").message


def test_output_selection_writes_only_the_selected_image(work):
    run_script("i 1,1,1,1,1 i 2,2,1,1,2 o[-1] last.npy")
    assert np.load(work / "last.npy").max() == 2


def test_output_several_plain_images_become_numbered_files(work):
    run = run_script("i 2,2,1,1,10 i 3,3,1,1,20 o many.png")
    assert sorted(p.name for p in work.iterdir()) == ["many_000.png", "many_001.png"]
    assert "many_000.png, many_001.png" in run.err


def test_remove_and_keep():
    base = "i 1,1 i 2,1 i 3,1 i 4,1\n"
    widths = lambda run: [image.shape[3] for image in run.images]  # noqa: E731
    assert widths(run_script(base + "rm[1,3]")) == [1, 3]
    assert widths(run_script(base + "remove[-1]")) == [1, 2, 3]
    assert widths(run_script(base + "rm")) == []
    assert widths(run_script(base + "k[2,0]")) == [1, 3]  # G'MIC sorts selections
    assert widths(run_script(base + "keep[1-2]")) == [2, 3]


def test_name_all_selected_or_with_commas():
    run = run_script('i 1,1 i 1,1 i 1,1 nm[0-2] all nm[1] one name "x, y"')
    assert run.names == ["all", "one", "x, y"]
    run = run_script("i 1,1 i 1,1 i 1,1 nm a,b nm[0] c")  # G'MIC: the last images, one name each
    assert run.names == ["c", "a", "b"]


def test_print_line_format():
    run = run_script("(1,2;3,10) nm. pic i 2,3,4,5,-1.25 p")
    assert run.lines == [
        "[0] pic: 2,2,1,1 min=1 max=10 mean=4",
        "[1] [-1.25]: 2,3,4,5 min=-1.25 max=-1.25 mean=-1.25",  # G'MIC's name
    ]


def test_print_selection_keeps_list_indices():
    run = run_script("i 1,1 i 2,1 i 3,1 p[2] print[0]")
    assert [re.match(r"\[(\d)\]", line).group(1) for line in run.lines] == ["2", "0"]


def test_print_on_empty_list():
    assert run_script("p").lines == ["(no images)"]


def test_print_rounds_statistics():
    assert run_script("(0,1,1) p").lines == ["[0] (0,1,1): 3,1,1,1 min=0 max=1 mean=0.666667"]


def test_echo():
    run = run_script('e hello echo "two  words",and,more e ""')
    assert run.lines == ["hello", "two  words,and,more", ""]


# --- resize -----------------------------------------------------------------------------------


def test_resize_nearest_duplicates_pixels():
    image = run_script("(1,2;3,4) r 4,4,1,1,nearest").image()
    assert values(image) == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_resize_nearest_downsample_picks_existing_values():
    image = run_script("(0,1,2,3,4,5) r 3,1,1,1,1").image()
    assert values(image) == [[0, 2, 4]]  # G'MIC: floor(i*6/3)


def test_resize_percent_sizes_and_defaults():
    run = run_script("i 10,20,3,2 r 50%,150% e {w},{h},{d},{s} r 3 e {w},{h},{d},{s}")
    assert run.lines == ["5,30,3,2", "3,30,3,2"]


def test_resize_percent_never_goes_below_one_pixel():
    assert run_script("i 3,3 r 1%,1% e {w},{h}").lines == ["1,1"]


def test_resize_depth_and_spectrum():
    image = run_script("(1,2) r 100%,100%,2,3,nearest").image()
    assert image.shape == (3, 2, 1, 2)
    assert np.all(image == np.array([1, 2], np.float32))


def test_resize_linear_upsample_values():
    image = run_script("(0,1) r 4,1,1,1,3").image()
    assert values(image)[0] == pytest.approx([0, 1 / 3, 2 / 3, 1])  # G'MIC: ends on ends


def test_resize_linear_downsample_of_a_ramp_stays_linear():
    for size in (10, 7, 33):
        image = run_script(f"i 100,3 fill {','.join(map(str, range(100)))} r {size},3,1,1,linear").image()
        row = image[0, 0, 1]
        steps = np.diff(row)
        assert np.all(steps > 0)  # monotone
        assert np.allclose(steps, 100 / size, atol=0.02)  # evenly spaced: a straight ramp
        assert row.min() >= 0 and row.max() <= 99
        assert row.mean() == pytest.approx(49.5, abs=1e-3)  # G'MIC samples pixel centres when shrinking


def test_resize_linear_upsample_of_a_ramp_is_monotone():
    row = run_script("(0,10,20,30) r 13,1,1,1,linear").image()[0, 0, 0]
    assert np.all(np.diff(row) >= 0)
    assert row[0] == 0 and row[-1] == 30


@pytest.mark.parametrize("size", ["13,3", "2,9", "200%,33%"])
def test_resize_cubic_reproduces_constants(size):
    image = run_script(f"i 5,7,1,2,4.25 r {size},1,2,cubic").image()
    assert np.allclose(image, 4.25, atol=1e-5)


def test_resize_cubic_reproduces_a_ramp_away_from_the_borders():
    row = run_script(f"i 40,1 fill {','.join(map(str, range(40)))} r 80,1,1,1,cubic").image()[0, 0, 0]
    # sample k sits at k*39/79 in the source
    expected = np.arange(80) * 39 / 79
    assert np.allclose(row[4:-4], expected[4:-4], atol=1e-4)


def test_resize_plus_keeps_the_original():
    run = run_script("i 4,4,1,1,1 +r 2,2")
    assert [image.shape for image in run.images] == [(1, 1, 4, 4), (1, 1, 2, 2)]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("0", "width must be"),
        ("abc", "width must be"),
        ("2.5", "width must be"),
        ("-5%", "width must be"),
        ("2,2,1,1,bogus", "interpolation must be one of none|nearest|average|linear|grid|cubic|lanczos"),
        ("2,2,1,1,linear,0,0,0,0,0,9", "takes at most 10 arguments"),
        ("1e20,1e20", "width is too large (got '1e20', at most 2147483647)"),
        ("100000,100000", "the resized image of size 100000,100000,1,1 is too large"),
        ("10000000%,10000000%", "the resized image of size 300000,300000,1,1 is too large"),
    ],
)
def test_resize_bad_arguments(arguments, message):
    error = script_error(f"i 3,3\nr {arguments}")
    assert message in error.message
    assert error.command == "resize"
    assert error.where == "test.nnp:2"


# --- normalize, crop, append, fill --------------------------------------------------------------


def test_normalize_maps_min_and_max():
    image = run_script("(2,4,6;8,10,12) n 0,1").image()
    assert np.allclose(values(image), [[0, 0.2, 0.4], [0.6, 0.8, 1]])


def test_normalize_reversed_range_and_each_image_separately():
    run = run_script("(0,5,10) (100,200) normalize 10,-10")  # G'MIC reads it as -10,10
    assert np.allclose(values(run.image(0)), [[-10, 0, 10]])
    assert np.allclose(values(run.image(1)), [[-10, 10]])


def test_normalize_constant_image_becomes_the_minimum():
    assert np.all(run_script("i 3,3,1,1,7 n 2,5").image() == 2)


def test_normalize_needs_two_numbers():
    assert "missing argument 'max'" in script_error("i 2,2 n 0").message


def test_crop_inside():
    image = run_script("(1,2,3;4,5,6;7,8,9) crop 1,0,2,1").image()
    assert values(image) == [[2, 3], [5, 6]]


def test_crop_outside_region_is_zero_filled():
    image = run_script("(1,2;3,4) crop -1,-1,2,1").image()
    assert values(image) == [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0]]


def test_crop_completely_outside_gives_zeros():
    image = run_script("(1,2;3,4) crop 5,5,6,7").image()
    assert image.shape == (1, 1, 3, 2)
    assert np.all(image == 0)


def test_crop_keeps_depth_and_channels():
    image = run_script("i 4,4,2,3,5 crop 1,1,2,2").image()
    assert image.shape == (3, 2, 2, 2)
    assert np.all(image == 5)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ("0,0,1,1,1,1,1,1,1,1", "corners must be 2, 4, 6 or 8 numbers"),
        ("0,0,abc,1", "x1 must be a number, or N% (got 'abc')"),
        ("0,0,1e20,1", "position 1e+20 is too far (at most 2147483647)"),
        ("0,0,99999,99999", "the cropped image of size 100000,100000,1,1 is too large"),
    ],
)
def test_crop_bad_arguments(arguments, message):
    assert message in script_error(f"(1,2;3,4) crop {arguments}").message


def test_append_x_pads_smaller_images_with_zero():
    run = run_script("(1,2) nm. first (3;4) nm. second append x")
    assert run.names == ["first"]
    assert values(run.image()) == [[1, 2, 3], [0, 0, 4]]


def test_append_y():
    image = run_script("(1,2) (3) append y").image()
    assert values(image) == [[1, 2], [3, 0]]


def test_append_z_and_c():
    volume = run_script("i 2,2,1,1,1 i 2,2,1,1,2 append z").image()
    stacked = run_script("i 2,2,1,1,1 i 2,2,1,1,2 append c").image()
    assert volume.shape == (1, 2, 2, 2)
    assert stacked.shape == (2, 1, 2, 2)
    assert volume[0, :, 0, 0].tolist() == [1, 2]
    assert stacked[:, 0, 0, 0].tolist() == [1, 2]


def test_append_c_pads_smaller_images():
    image = run_script("i 2,2,1,3,1 i 1,1,1,1,5 append c").image()
    assert image.shape == (4, 1, 2, 2)
    assert values(image[3:]) == [[5, 0], [0, 0]]


def test_append_selection_replaces_first_selected_and_keeps_others():
    run = run_script("(1) nm. a (2) nm. b (3) nm. c (4) nm. d append[1,3] x")
    assert run.names == ["a", "b", "c"]
    assert values(run.image(1)) == [[2, 4]]


def test_append_needs_a_known_axis():
    assert "axis must be one of x|y|z|c" in script_error("(1) (2) append w").message


def test_fill_one_value():
    image = run_script("i 3,2,2,2 fill 1.5").image()
    assert np.all(image == 1.5)


def test_fill_several_values_repeat_along_x_then_y():
    assert values(run_script("i 3,2 fill 1,2,3").image()) == [[1, 2, 3], [1, 2, 3]]
    assert values(run_script("i 2,3 fill 1,2,3").image()) == [[1, 2], [3, 1], [2, 3]]


def test_fill_values_go_on_into_channels():
    image = run_script("i 2,1,1,2 fill 1,2,3,4").image()
    assert image[:, 0, 0, :].tolist() == [[1, 2], [3, 4]]


def test_fill_with_text_is_an_error():
    error = script_error("i 2,2 fill 1,abc")
    assert error.command == "fill"
    assert "expression '1,abc'" in error.message  # not numbers: read as a math expression


# --- noise and srand --------------------------------------------------------------------------


def test_gaussian_noise_statistics():
    image = run_script("srand 7 i 300,300,1,1,10 noise 2").image()
    assert image.mean() == pytest.approx(10, abs=0.05)
    assert image.std() == pytest.approx(2, rel=0.03)
    assert (np.abs(image - 10) > 2).mean() == pytest.approx(0.3173, abs=0.01)  # one sigma


def test_uniform_noise_statistics():
    image = run_script("srand 7 i 300,300 noise 3,uniform").image()
    assert image.min() >= -3 and image.max() <= 3
    assert image.mean() == pytest.approx(0, abs=0.05)
    assert image.std() == pytest.approx(3 / np.sqrt(3), rel=0.03)
    assert np.histogram(image, bins=6, range=(-3, 3))[0].min() > 13000  # flat


def test_noise_zero_amplitude_changes_nothing():
    assert np.all(run_script("i 10,10,1,1,4 noise 0").image() == 4)


def test_srand_makes_noise_reproducible():
    first = run_script("srand 42 i 20,20 noise 1", seed=None).image()
    second = run_script("srand 42 i 20,20 noise 1", seed=None).image()
    other = run_script("srand 43 i 20,20 noise 1", seed=None).image()
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_srand_restarts_the_sequence_within_a_run():
    run = run_script("srand 5 i 8,8 noise 1 srand 5 i 8,8 noise[-1] 1")
    assert np.array_equal(run.image(0), run.image(1))


def test_seed_option_and_srand_give_the_same_numbers():
    assert np.array_equal(
        run_script("i 9,9 noise 1", seed=11).image(), run_script("srand 11 i 9,9 noise 1", seed=None).image()
    )


def test_successive_noise_calls_differ():
    run = run_script("i 8,8 i 8,8 noise 1")
    assert not np.array_equal(run.image(0), run.image(1))


@pytest.mark.parametrize(
    "script, message",
    [
        ("srand -1", "seed must be an integer >= 0"),
        ("srand 1.5", "seed must be an integer"),
        ("i 2,2 noise -1", "amplitude must be a number >= 0"),
        ("i 2,2 noise 1,pink", "type must be one of"),
    ],
)
def test_noise_and_srand_bad_arguments(script, message):
    assert message in script_error(script).message


def test_a_command_failing_on_its_second_image_puts_the_first_back():
    run = run_script("(1) i 2000,1")
    with pytest.raises(UserError, match="too large"):  # 1e9% of 2000 pixels is beyond any size
        run.interpreter.run_items(["r", "1e9%,100%"])
    assert [image.shape for image in run.images] == [(1, 1, 1, 1), (1, 1, 1, 2000)]


# --- commands applied to each image: several results, failures -----------------------------------


def test_a_command_failing_on_one_image_leaves_every_image_as_it_was():
    """to_rgb makes [0] RGB, then fails on [1] (5 channels): [0] is put back, and the error
    names the image it is about."""
    interpreter = run_script("(1^2) (1^2^3^4^5) (7)").interpreter
    with pytest.raises(UserError) as info:
        interpreter.run_source("split_opacity[0] to_rgb", "t.nnp", [])
    assert str(info.value) == "t.nnp:1: to_rgb: image [2] is not a G, GA, RGB or RGBA image (5 channels)"
    images = interpreter.workspace.images
    assert [image.shape[0] for image in images] == [1, 1, 5, 1]  # split_opacity's two parts stay
    assert values(images[0]) == [[1]] and values(images[1]) == [[2]]


def test_split_results_take_the_place_of_their_image():
    run = run_script("(1^2^3^4) nm a (5) nm b (6^7) nm c split_opacity")
    assert run.names == ["a", "a_c1", "b", "c", "c_c1"]
    assert [image.shape[0] for image in run.images] == [3, 1, 1, 1, 1]


@pytest.mark.parametrize("script", ["(1^2^3^4) +to_rgba", "(1,2) +resize 100%", "(1^2) +split_opacity"])
def test_results_of_plus_never_share_memory_with_their_input(script):
    """Images are written in place (training updates weight images): a '+' copy that were a
    view of its input would change with it."""
    first, *results = run_script(script).images
    assert not any(np.shares_memory(first, result) for result in results)
