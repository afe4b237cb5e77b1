"""G'MIC's per-pixel math expressions (fill, eval, input w,h,d,s,"expr") and nn_lib's training
macros inside them; the seed tutorial run as published."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_script, script_error

SEED = REPO.parent / "shared" / "seed" / "nn_test_color_astronaut.gmic"


def test_fill_scalar_expression_runs_once_per_value():
    image = run_script('i 4,3,1,2 fill "x+10*y+100*c"').image()
    w = np.arange(4)[None, None, None, :]
    h = np.arange(3)[None, None, :, None]
    c = np.arange(2)[:, None, None, None]
    assert np.array_equal(image, (w + 10 * h + 100 * c + 0 * image).astype(np.float32))


def test_fill_vector_expression_fills_whole_pixels():
    image = run_script('i 3,2,1,3 f "[x,y,x*y]"').image()
    assert image[:, 0, 1, 2].tolist() == [2, 1, 2]


def test_input_with_an_expression_names_the_image_as_gmic_does():
    run = run_script('i 2,2,1,1,"x<1?5:7"')
    assert run.image().ravel().tolist() == [5, 7, 5, 7]
    assert run.names == ["[x<1?5:7]"]


def test_expression_reads_other_images_with_gmic_boundaries():
    run = run_script('(1,2;3,4) i 3,1,1,1,"i(#0,x,1)+I(#0,x-1,0)[0]*100"')
    # i(#0,x,1) reads row 1; x-1 = -1 is outside image 0: 0 there
    assert run.image().ravel().tolist() == [3, 104, 200]


def test_eval_sets_variables_with_set_and_end():
    run = run_script("(1,2,3,4) eval[0] \"v = i*2; end(set('last',v))\" e $last")
    assert run.lines == ["8"]


def test_plus_fill_keeps_the_input():
    run = run_script('i 2,1 +f "x+1"')
    assert [image.ravel().tolist() for image in run.images] == [[0, 0], [1, 2]]
    assert run.names == ["[unnamed]", "[unnamed]_c1"]


def test_the_tutorials_batch_expression_picks_pixels_and_their_colours():
    run = run_script(
        'i 4,3,1,3,"x+10*y+100*c" '
        '1,5,1,5,"P = [y%4,y%3]; [ lerp(-1,1,P[0]/w#0),lerp(-1,1,P[1]/h#0),I(#0,P)/255 ]"'
    )
    batch = run.image()
    for k in range(5):
        px, py = k % 4, k % 3
        expected = [-1 + 2 * px / 4, -1 + 2 * py / 3] + [(px + 10 * py + 100 * c) / 255 for c in range(3)]
        assert batch[:, 0, k, 0] == pytest.approx(expected, rel=1e-6)


def test_random_values_follow_the_seed_and_stay_in_range():
    a = run_script('i 100,1 f "u(3,5)"', seed=4).image()
    b = run_script('i 100,1 f "u(3,5)"', seed=4).image()
    assert np.array_equal(a, b)
    assert 3 <= a.min() and a.max() <= 5 and len(np.unique(a)) > 90


def test_expression_error_names_the_line_and_the_position():
    error = script_error('e ok\ni 2,2 fill "x+(y*"', file="bad.nnp")
    assert error.where == "bad.nnp:2"
    assert error.command == "fill"
    assert "expression 'x+(y*': unexpected 'end of expression' at position 6" in error.message


NETWORK = (
    "nn_init nn_input IN,2 nn_fcnnl L1,IN,8 nn_resfcnl L2,L1 nn_fc OUT,L2,3 "
    "nn_loss_mse LOSS,OUT,GT nn_trainer T,LOSS,1e-2,adam "
)
BATCH = '1,32,1,5,"[ lerp(-1,1,y/31), cos(y), sin(y)/2+0.5, (y%3)/2, y/31 ]" name. batch '
MACRO_STEP = (
    'eval[batch] *${-nn_lib}"IN = [ i0,i1 ]; GT = [ i2,i3,i4 ];"'
    "$_nn_forward$_nn_loss$_nn_backward$_nn_update\"end(set('loss',LOSS)); I\" "
)


def test_the_macros_step_equals_nn_step_on_the_same_batch():
    by_macros = run_script(BATCH + NETWORK + MACRO_STEP * 3, seed=7)
    by_step = run_script(BATCH + NETWORK + "nn_step[batch] " * 3, seed=7)
    assert float(by_macros.interpreter.lookup("loss")) == pytest.approx(
        float(by_step.interpreter.lookup("loss")), rel=1e-6
    )
    for name in ("L1_fc", "L1_normalize", "L2_fc", "OUT_fc", "OUT_fc_m", "OUT_fc_v", "T"):
        assert np.allclose(
            by_macros.workspace.images.get(name), by_step.workspace.images.get(name), rtol=1e-5, atol=1e-7
        ), name


def test_the_macros_train_the_network_as_it_is_after_a_layer_is_added():
    """A step by the macros, then a new layer and the loss re-declared on it: the next steps
    train the new network (its new layer too), as nn_step does."""
    change = "nn_fc OUT2,OUT,3 nn_loss_mse LOSS,OUT2,GT "
    by_macros = run_script(BATCH + NETWORK + MACRO_STEP + change + MACRO_STEP * 2, seed=7)
    by_step = run_script(BATCH + NETWORK + "nn_step[batch] " + change + "nn_step[batch] " * 2, seed=7)
    assert float(by_macros.interpreter.lookup("loss")) == pytest.approx(
        float(by_step.interpreter.lookup("loss")), rel=1e-6
    )
    for name in ("OUT_fc", "OUT2_fc", "T"):
        assert np.allclose(
            by_macros.workspace.images.get(name), by_step.workspace.images.get(name), rtol=1e-5, atol=1e-7
        ), name


def test_fill_with_the_forward_macro_equals_nn_eval():
    script = (
        BATCH + NETWORK + "nn_step[batch] i 6,5,1,3 name canvas "
        '+f[canvas] "IN = [ lerp(-1,1,x/w),lerp(-1,1,y/h) ];"$_nn_forward"OUT" name. filled '
        'i 6,5,1,2 name coords f[coords] "[lerp(-1,1,x/w),lerp(-1,1,y/h)]" nn_eval[coords]'
    )
    run = run_script(script, seed=3)
    filled, evaluated = run.images.get("filled"), run.images.get("OUT")
    coords = run.images.get("coords")
    assert coords[:, 0, 2, 3] == pytest.approx([-1 + 2 * 3 / 6, -1 + 2 * 2 / 5])  # same inputs
    assert np.allclose(filled, evaluated, atol=1e-6)


@pytest.mark.parametrize(
    "feed, result", [("[ lerp(-1,1,x/w),0 ]", "OUT"), ("[ lerp(-1,1,x/w),0*u ]", "OUT[c]")]
)
def test_a_feed_varying_along_x_only_gives_each_pixel_its_own_sample(feed, result):
    """A value depending on x alone (or evaluated per channel, as u is in a scalar fill) is
    still one sample per pixel: the same as the value written out over every pixel."""
    script = (
        BATCH + NETWORK + "nn_step[batch] i 6,5,1,3 name canvas "
        f'+f[canvas] "IN = {feed};"$_nn_forward"{result}" name. filled '
        '+f[canvas] "IN = [ lerp(-1,1,x/w),0*y ];"$_nn_forward"OUT" name. full '
    )
    run = run_script(script, seed=3)
    filled = run.images.get("filled")
    assert np.allclose(filled, run.images.get("full"), atol=1e-6)
    assert not np.allclose(filled[:, :, :, 0], filled[:, :, :, 5])


def test_a_macro_needs_its_feeds_assigned():
    error = script_error(BATCH + NETWORK + 'eval[batch] "GT = [i2,i3,i4];"$_nn_forward$_nn_update')
    assert "feed 'IN' is not set" in error.message


def test_window_without_a_display_says_so_once_and_goes_on():
    run = run_script("i 2,2 w. 600,600,0 w. e after")
    assert run.lines == ["after"]
    assert run.err.count("no display") == (0 if os.environ.get("DISPLAY") else 1) or run.err == ""


def test_sample_image_and_unknown_sample():
    run = run_script("sp astronaut,128")
    assert run.image().shape == (3, 1, 128, 128)
    assert "nnpipe has: astronaut" in script_error("sp monalisa,256").message


def test_the_bounded_tutorial_example_trains(tmp_path):
    run = run_script(f"{REPO}/examples/nn_lib_tutorial.gmic nn_lib_tutorial 1500,{tmp_path}/out.png", seed=2)
    losses = [float(line.split("LOSS=")[1]) for line in run.lines if "LOSS=" in line]
    assert len(losses) == 2 and losses[1] < losses[0] / 4
    assert (tmp_path / "out.png").exists()
    psnr = float(run.lines[-1].split("PSNR: ")[1].split(" dB")[0])  # $psnr stays inside the command
    assert 12 < psnr < 40


@pytest.mark.skipif(not SEED.exists(), reason="the shared seed script sits beside the repository")
def test_the_published_tutorial_runs_as_written_until_interrupted():
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "nnpipe", "--seed", "1", str(SEED), "nn_test_color"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=environment,
    )
    losses = []
    for line in process.stdout:
        if line.startswith("LOSS="):
            losses.append(float(line[5:]))
        if len(losses) == 400:
            break
    process.send_signal(signal.SIGINT)
    process.stdout.read()
    error = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert error.strip().splitlines()[-1] == "nnpipe: interrupted"
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) / 2


def test_isdir_and_isfile_look_at_the_file_system(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    run = run_script(
        f"e {{isdir('{tmp_path}')}},{{isfile('{tmp_path}/f.txt')}},{{isdir('{tmp_path}/f.txt')}}"
    )
    assert run.lines == ["1,1,0"]


def test_g_is_normally_distributed_and_u_uniform_each_channel_its_own():
    run = run_script('20000,1,1,1,"g" 20000,1,1,1,"u" 2000,1,1,3,"u"', seed=5)
    normal, uniform, channels = run.images[0], run.images[1], run.images[2]
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1) < 0.05
    assert 0 <= uniform.min() and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.02
    assert not np.array_equal(channels[0], channels[1])
