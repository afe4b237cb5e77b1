"""The `nnpipe` command line: exit status, one-line errors, subcommands and options."""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, cli, subprocess_nnpipe

from nnpipe.commands import load_all
from nnpipe.lang import forms
from nnpipe.lang.parser import KEYWORDS

COMMANDS = load_all()

ERROR_LINE = re.compile(r"^nnpipe: error: (?P<where>[^:]+:\d+): (?P<rest>.*)$")


def single_error(result):
    """The one stderr line of a failed run, parsed."""
    assert result.exception is None, f"internal error: {result.exception!r}"
    lines = result.error_lines
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    match = ERROR_LINE.match(lines[0])
    assert match, lines[0]
    return match


# --- success and user errors ------------------------------------------------------------------


def test_success_exits_zero_with_output_on_stdout():
    result = cli("i", "(1,2;3,4)", "p", "e", "finished")
    assert result.code == 0
    assert result.stdout.splitlines() == ["[0] (1,2;3,4): 2,2,1,1 min=1 max=4 mean=2.5", "finished"]
    assert result.stderr == ""


def test_no_items_prints_help():
    result = cli()
    assert result.code == 0
    assert "nnpipe ITEM..." in result.stdout


def test_user_error_on_command_line_is_one_line_with_status_1():
    result = cli("i", "3,3", "r", "abc")
    assert result.code == 1
    assert result.stderr == (
        "nnpipe: error: <command line>:1: resize: width must be a size > 0 "
        "(pixels, or N% of the current size) (got 'abc')\n"
    )


def test_commands_before_the_error_have_run():
    result = cli("e", "before", "nope_command", "e", "after")
    assert result.code == 1
    assert result.stdout == "before\n"
    assert single_error(result).group("rest") == "unknown command 'nope_command'"


def test_error_command_stops_with_the_message():
    result = cli("error", "custom problem")
    assert result.code == 1
    assert single_error(result).group("rest") == "error: custom problem"


# --- errors in scripts name FILE:LINE -----------------------------------------------------------

SCRIPT_ERRORS = [
    ("unknown command", "e ok\ni 2,2\nfrobnicate 3\n", 3, "unknown command 'frobnicate'"),
    ("too many arguments", "i 2,2\n\nr 1,2,3,4,3,0,0,0,0,0,6\n", 3, "resize: takes at most 10 arguments"),
    ("missing argument", "i 2,2\nresize\n", 2, "resize: missing argument 'width'"),
    ("bad corners", "i 2,2\ncrop 0,a\n", 2, "crop: x1 must be a number, or N% (got 'a')"),
    ("wrong type", "i 2,2\nnoise abc\n", 2, "noise: amplitude must be a number >= 0 (got 'abc')"),
    ("out of range", "i 2,2\nnoise -3\n", 2, "noise: amplitude must be a number >= 0 (got '-3')"),
    ("bad choice", "i 2,2\nappend q\n", 2, "append: axis must be one of x|y|z|c (got 'q')"),
    ("bad selection", "i 2,2\ne x\nrm[3]\n", 3, "remove: selection [3] is out of range (1 image)"),
    ("missing file", "# load\ni missing_file.png\n", 2, "input: file 'missing_file.png' not found"),
    ("unreadable file", "i 2,2\ni broken.png\n", 2, "input: cannot read 'broken.png'"),
    ("repeat without done", "e a\nrepeat 3\n  e b\n", 2, "repeat: block is not closed (missing 'done')"),
    ("repeat without }", "repeat 3 {\n  e b\n", 1, "repeat: block is not closed (missing '}')"),
    ("if without fi", "e a\n\nif 1\n  e b\n", 3, "if: block is not closed (missing 'fi')"),
    ("unbalanced {", "e a\ne {1+2\n", 2, "unbalanced '{'"),
    ("bad expression", "x=1\ne $x\ne {$x+}\n", 3, "expression '1+': unexpected 'end of expression'"),
    ("infinite size", "i 4,4\nr {w/(h-4)}\n", 2, "width must be a size > 0"),
    ("spaced assignment", "e ok\nx = 3\n", 2, "'x =': to set a variable, write name=value without"),
    ("quoted unknown", 'e ok\n"two words"\n', 2, "unknown command 'two words'"),
    ("error inside a command", "f :\n  e in\n  crop 1,b\ni 2,2\nf\n", 3, "crop: x1 must be a number, or N%"),
]


@pytest.mark.parametrize("name, script, line, message", SCRIPT_ERRORS, ids=[e[0] for e in SCRIPT_ERRORS])
def test_script_error_is_one_line_naming_file_and_line(work, name, script, line, message):
    (work / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (work / "demo.nnp").write_text(script)
    result = cli("run", "demo.nnp")
    assert result.code == 1
    match = single_error(result)
    assert match.group("where") == f"demo.nnp:{line}"
    assert message in match.group("rest")


def test_script_path_is_shown_as_given(work):
    (work / "sub").mkdir()
    (work / "sub" / "s.nnp").write_text("e fine\nbogus_cmd\n")
    result = cli("run", "sub/s.nnp")
    assert result.code == 1
    assert single_error(result).group("where") == "sub/s.nnp:2"


def test_command_line_error_for_each_kind_names_command_line(work):
    for items in (
        ["nope"],
        ["i", "2,2", "crop", "1"],
        ["e", "{1/}"],
        ["e", "{nosuch(1)}"],
        ["p[2]"],
        ["i", "missing_file.png"],
        ["repeat", "2", "e", "x"],
    ):
        result = cli(*items)
        assert result.code == 1, items
        assert single_error(result).group("where") == "<command line>:1", items


# --- command-line misuse: status 2 ------------------------------------------------------------


@pytest.mark.parametrize(
    "args, start",
    [
        (["run"], "nnpipe: error: run: missing argument 'FILE' (usage: nnpipe run "),
        (["sweep"], "nnpipe: error: sweep: missing argument 'SCRIPT' (usage: nnpipe sweep "),
        (["map", "nowhere.nnp"], "nnpipe: error: map: invalid value for 'SCRIPT': File 'nowhere.nnp'"),
        (["sweep", "--workers", "0"], "nnpipe: error: sweep: invalid value for '--workers'"),
        (["help", "a", "b"], "nnpipe: error: help: got unexpected extra argument (b)"),
        (["--seed", "x", "e", "y"], "nnpipe: error: invalid value for '--seed'"),
    ],
)
def test_command_line_misuse_is_one_nnpipe_error_line_for_every_subcommand(args, start, work):
    result = cli(*args)
    assert result.code == 2
    assert len(result.error_lines) == 1 and result.error_lines[0].startswith(start), result.stderr


def test_run_with_missing_script_is_misuse(work):
    result = cli("run", "nowhere.nnp")
    assert result.code == 2
    assert result.stderr == "nnpipe: error: nowhere.nnp: cannot read script: No such file or directory\n"


def test_run_with_binary_script_is_misuse(work):
    (work / "binary.nnp").write_bytes(b"\xff\xfe\x00bad")
    result = cli("run", "binary.nnp")
    assert result.code == 2
    assert "not UTF-8" in result.stderr


def test_unknown_option_is_misuse():
    result = cli("--bogus-option")
    assert result.code == 2
    assert result.error_lines == ["nnpipe: error: no such option '--bogus-option' (see nnpipe --help)"]


def test_bad_seed_is_misuse():
    assert cli("--seed", "abc", "e", "x").code == 2
    assert cli("--seed", "-1", "e", "x").code == 2


def test_help_for_unknown_command_is_misuse():
    result = cli("help", "nosuchcommand")
    assert result.code == 2
    assert result.error_lines == [
        "nnpipe: error: help: unknown command or form 'nosuchcommand' (did you mean 'command'?)"
    ]


# --- help, commands, version ------------------------------------------------------------------


def test_help_resize_shows_usage_line():
    result = cli("help", "resize")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "resize width,_height,_depth,_spectrum,_interpolation,_boundary_conditions,"
        "_centering_x,_centering_y,_centering_z,_centering_c"
    )
    assert "aliases: r" in lines
    assert any("1 nearest, 2 moving average, 3 linear" in line for line in lines)


def test_help_by_alias_describes_the_command():
    assert cli("help", "r").stdout == cli("help", "resize").stdout


def test_help_without_name_lists_subcommands_forms_and_commands_by_family():
    result = cli("help")
    assert result.code == 0
    lines = result.stdout.splitlines()
    families = [line for line in lines if line and not line.startswith(" ")]
    assert families[:3] == [
        "Command line (nnpipe help NAME):",
        "Language (nnpipe help NAME, NAME: any word shown):",
        "Images:",
    ]
    listed = {line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")}
    assert {"run", "sweep", "map", "help", "commands", "repeat", "if", "do", "break"} <= listed
    assert set(COMMANDS.commands()) <= listed
    assert all(f"  {form.usage}" in lines for form in forms.FORMS)


@pytest.mark.parametrize("name", ["run", "sweep", "map", "help", "commands"])
def test_help_describes_each_subcommand_with_its_usage(name):
    result = cli("help", name)
    assert result.code == 0
    assert result.stdout.startswith(f"Usage: nnpipe {name} ")


def test_help_describes_every_keyword_and_form_of_the_language():
    """Every keyword the parser knows, and the forms the issue named, have their help."""
    names = KEYWORDS | {"+cmd", "[", "selection", "$", "${name=default}", "{expr}", "_name", "name :"}
    for name in sorted(names):
        result = cli("help", name)
        assert result.code == 0, name
        assert result.stdout.splitlines()[0] == forms.lookup(name).usage


def test_commands_lists_groups_and_commands():
    result = cli("commands")
    assert result.code == 0
    lines = result.stdout.splitlines()
    assert "Images:" in lines and "Control:" in lines
    assert lines.index("Images:") < lines.index("Control:")
    names = {line.split()[0] for line in lines if line.startswith("  ")}
    assert {"input", "output", "resize", "crop", "append", "fill", "noise", "echo", "srand"} <= names
    assert any(line.strip().startswith("resize") and "Resize images" in line for line in lines)


def test_version():
    result = cli("--version")
    assert result.code == 0
    assert result.stdout.startswith("nnpipe, version ")


# --- scripts, arguments and standard input ----------------------------------------------------


def test_run_warns_when_an_argument_names_a_command_the_script_never_reads(work):
    """`nnpipe run FILE 300 nn_save x.tif`: nn_save is $2, not a command run after the script."""
    (work / "s.nnp").write_text("echo $1\nshown :\n  echo $2\n")
    result = cli("run", "s.nnp", "300", "nn_save", "x.tif", "+resize[0]", "shown")
    assert result.code == 0 and result.stdout == "300\n"
    assert [line.split("'")[1] for line in result.error_lines] == ["nn_save", "+resize[0]", "shown"]
    assert result.error_lines[0] == (
        "nnpipe: warning: run: argument 2 'nn_save' names a command, but s.nnp never reads $2"
        " (nor $*): what follows a script's name are its arguments, not commands run after it"
    )
    (work / "all.nnp").write_text("echo $*\n")
    assert cli("run", "all.nnp", "300", "nn_save").stderr == ""  # read, by $*
    (work / "two.nnp").write_text('echo "$1 $2"\n')
    assert cli("run", "two.nnp", "print", "e").stderr == ""  # read, by $1 and $2


def test_run_passes_script_arguments(work):
    (work / "args.nnp").write_text('e "first="$1" second="$2" count="$#\ne ${3=none}\n')
    result = cli("run", "args.nnp", "a", "b")
    assert result.code == 0
    assert result.stdout.splitlines() == ["first=a second=b count=2", "none"]


def test_run_arguments_may_look_like_options(work):
    (work / "args.nnp").write_text("e $1\n")
    result = cli("run", "args.nnp", "--verbose")
    assert result.code == 0
    assert result.stdout == "--verbose\n"


def test_run_dash_reads_standard_input():
    result = cli("run", "-", "X", input="i 3,2\ne {w}x{h}:$1\n")
    assert result.code == 0
    assert result.stdout == "3x2:X\n"


def test_error_in_standard_input_script_names_stdin():
    result = cli("run", "-", input="e ok\nbad_command\n")
    assert result.code == 1
    assert single_error(result).group("where") == "<stdin>:2"


def test_script_writes_files(work):
    (work / "make.nnp").write_text("i 4,4,1,1,7 o out.npy\n")
    result = cli("run", "make.nnp")
    assert result.code == 0
    assert np.load(work / "out.npy").max() == 7


# --- options ----------------------------------------------------------------------------------


def test_output_notice_and_quiet(work):
    loud = cli("i", "2,2", "o", "a.png")
    quiet = cli("--quiet", "i", "2,2", "o", "b.png")
    short = cli("-q", "i", "2,2", "o", "c.png")
    assert loud.code == quiet.code == short.code == 0
    assert loud.stderr == "wrote a.png\n"
    assert quiet.stderr == "" and short.stderr == ""
    assert (work / "b.png").exists() and (work / "c.png").exists()


def test_verbose_prints_each_command_with_its_place(work):
    (work / "v.nnp").write_text("i 2,2\nrepeat 2 { e $> }\n")
    result = cli("--verbose", "run", "v.nnp")
    assert result.code == 0
    assert result.stdout == "0\n1\n"
    assert result.stderr.splitlines() == ["[v.nnp:1] i 2,2", "[v.nnp:2] e 0", "[v.nnp:2] e 1"]


def test_without_verbose_nothing_is_printed_on_stderr():
    assert cli("i", "2,2", "e", "x").stderr == ""


def test_debug_shows_a_traceback_for_a_user_error():
    result = cli("--debug", "i", "2,2", "r", "abc")
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.error_lines[-1].startswith("nnpipe: error: <command line>:1: resize: width must be")


def test_seed_makes_runs_repeatable(work):
    first = cli("--seed", "3", "i", "4,4", "noise", "1", "o", "a.npy")
    second = cli("--seed", "3", "i", "4,4", "noise", "1", "o", "b.npy")
    third = cli("--seed", "4", "i", "4,4", "noise", "1", "o", "c.npy")
    assert first.code == second.code == third.code == 0
    assert np.array_equal(np.load(work / "a.npy"), np.load(work / "b.npy"))
    assert not np.array_equal(np.load(work / "a.npy"), np.load(work / "c.npy"))


# --- the real process -------------------------------------------------------------------------


def test_process_user_error_exits_1_without_traceback(tmp_path):
    (tmp_path / "bad.nnp").write_text("e start\ni 2,2\nr 0\n")
    process = subprocess_nnpipe("run", "bad.nnp", cwd=tmp_path)
    assert process.returncode == 1
    assert process.stdout == "start\n"
    assert process.stderr.splitlines() == [
        "nnpipe: error: bad.nnp:3: resize: width must be a size > 0 (pixels, or N% of the current size)"
        " (got '0')"
    ]


def test_process_misuse_exits_2_and_success_exits_0(tmp_path):
    misuse = subprocess_nnpipe("run", cwd=tmp_path)
    assert misuse.returncode == 2
    assert "Traceback" not in misuse.stderr
    success = subprocess_nnpipe("i", "(1,2)", "o", "x.png", "e", "ok", cwd=tmp_path)
    assert success.returncode == 0
    assert success.stdout == "ok\n"
    assert (tmp_path / "x.png").exists()


def test_running_out_of_memory_is_a_one_line_error_naming_the_command(monkeypatch):
    from nnpipe.registry import lookup

    def exhausted(*args):
        raise MemoryError

    monkeypatch.setattr(lookup("crop"), "function", exhausted)
    result = cli("i", "2,2", "crop", "0,0,1,1")
    assert result.code == 1
    assert single_error(result).group("rest").startswith("crop: out of memory")


def test_the_nnlib_api_is_chosen_explicitly_and_a_command_of_the_other_is_one_line():
    result = cli("--nnlib", "3.6", "nn_init", "N", "nn_input", "IN,2", "nn_fcnnl", "A,IN,3")
    assert result.code == 1
    assert result.error_lines == [
        "nnpipe: error: <command line>:1: 'nn_fcnnl' is nn_lib 2023's, not 3.6's:"
        " run nnpipe with --nnlib 2023 (or NNPIPE_NNLIB=2023)"
    ]
    assert cli("nn_init", "nn_input", "IN,2", "nn_fcnnl", "A,IN,3", "nn_size").code == 0
    assert "is nn_lib 3.6's, not 2023's" in cli("nn_init", "nn_input", "IN,2", "nn_sub", "A,IN,1").stderr


def test_the_nnlib_api_comes_from_the_environment_too(monkeypatch):
    monkeypatch.setenv("NNPIPE_NNLIB", "3.6")
    assert "is nn_lib 2023's" in cli("nn_init", "N", "nn_input", "IN,2", "nn_fcnl", "A,IN,3").stderr
    monkeypatch.setenv("NNPIPE_NNLIB", "2024")
    result = cli("echo", "hi")
    assert result.code == 2 and "'2024' is not one of '2023', '3.6'" in result.stderr


def test_a_closed_output_pipe_ends_the_run_quietly_as_unix_tools_do(tmp_path):
    """`nnpipe ... | head -1`: killed by SIGPIPE as G'MIC's command line is (status 141 in the
    shell), nothing on standard error, not even at shutdown."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "nnpipe", "-q", "repeat", "100000", "echo", "line", "done"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline() == b"line\n"
    process.stdout.close()  # what `head -1` does once it has its line
    assert process.wait(timeout=120) == -signal.SIGPIPE
    assert process.stderr.read() == b""
