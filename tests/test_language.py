"""The command language: items, quoting, selections, substitution, blocks, definitions."""

import contextlib
import io
import tempfile

import numpy as np
import pytest
from conftest import items_error, run_items, run_script, script_error, values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnpipe.commands import load_all
from nnpipe.errors import UserError
from nnpipe.lang.interpreter import Interpreter
from nnpipe.lang.lexer import lex, split_line
from nnpipe.registry import COMMANDS

# --- items and quoting ------------------------------------------------------------------------


def test_items_are_separated_by_any_white_space():
    run = run_script("e one   e\ttwo\n\n   e three")
    assert run.lines == ["one", "two", "three"]


def test_double_quotes_keep_spaces_in_one_item():
    run = run_script('e "hello   big world"')
    assert run.lines == ["hello   big world"]


def test_quoted_arguments_may_hold_commas_and_spaces():
    run = run_script('e "a b",c,"d, e"')
    assert run.lines == ["a b,c,d, e"]


def test_unterminated_quote_is_an_error_naming_the_line():
    error = script_error('e ok\ne "never closed\n', file="q.nnp")
    assert error.where == "q.nnp:2"
    assert "unterminated string" in error.message


def test_lexer_keeps_expression_with_spaces_in_one_item():
    items = split_line("e {1 + 2} x", "f", 7)
    assert [i.text for i in items] == ["e", "{1 + 2}", "x"]
    assert all(i.where == "f:7" for i in items)


def test_expression_item_with_spaces_is_evaluated():
    assert run_script("e {1 + 2 * 3}").lines == ["7"]


def test_command_line_items_are_taken_as_they_are():
    # the shell already split the words: an item may hold spaces without quotes
    run = run_items("e", "two words")
    assert run.lines == ["two words"]


def test_hash_starts_a_comment_line_and_a_trailing_comment():
    run = run_script("# a comment line\ne shown # e hidden\n  # indented comment\ne also")
    assert run.lines == ["shown", "also"]


def test_hash_inside_an_item_is_not_a_comment():
    run = run_script("i 3,2 e {w#0}x{h#-1}")
    assert run.lines == ["3x2"]


def test_trailing_backslash_continues_the_line():
    run = run_script("e {1+\\\n    2}\ni 2,3 \\\n  e {h}")
    assert run.lines == ["3", "3"]


def test_error_after_continued_line_keeps_the_physical_line_number():
    error = script_error("e {1+\\\n  2}\ne c\nnope_cmd\n")
    assert error.where == "test.nnp:4"


# --- commands and their argument item ---------------------------------------------------------


def test_command_takes_next_item_as_comma_separated_arguments():
    run = run_script("i 4,3,2,1,5")
    assert run.image().shape == (1, 2, 3, 4)
    assert np.all(run.image() == 5)


def test_alias_runs_the_same_command():
    assert run_script("i 4,3 r 2,6 e {w},{h}").lines == ["2,6"]


def test_a_command_takes_the_next_item_whatever_it_looks_like():
    # as in G'MIC: `echo` takes an argument, so `p`, `x=3` and `done` are what it prints
    run = run_script("i 1,1 e p e x=3 e done")
    assert run.lines == ["p", "x=3", "done"]


def test_optional_arguments_do_not_swallow_next_assignment():
    run = run_script("i 1,1 nn_init nn_input IN,1 nn_fc OUT,IN,1 nn_eval x=3 e $x")
    assert run.lines[-1] == "3"


def test_optional_arguments_do_not_swallow_a_keyword():
    run = run_script("i 1,1 repeat 2 rm done e end")
    assert run.lines == ["end"]


def test_required_argument_is_taken_even_if_it_looks_like_a_command():
    # `name` needs its argument, so the next item is the name even though `p` is a command
    run = run_script("i 1,1 nm p")
    assert run.names == ["p"]


def test_bare_file_name_item_is_input(work):
    np.save(work / "data.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    run = run_script("data.npy e {w}x{h}")
    assert run.lines == ["3x2"]
    assert run.names == ["data"]


def test_bare_inline_values_item_is_input():
    run = run_items("(1,2;3,4)", "p")
    assert values(run.image(0)) == [[1, 2], [3, 4]]
    assert run.lines == ["[0] (1,2;3,4): 2,2,1,1 min=1 max=4 mean=2.5"]  # G'MIC's name


def test_unknown_command_is_an_error_with_a_hint():
    error = script_error("i 1,1\nresiz 2,2")
    assert error.where == "test.nnp:2"
    assert "unknown command 'resiz'" in error.message
    assert "resize" in error.message


def test_missing_bare_file_is_an_error(work):
    error = items_error("missing.png")
    assert "missing.png" in str(error)
    assert "not found" in str(error)


# --- selections -------------------------------------------------------------------------------


@pytest.fixture
def four():
    """Four images of widths 1..4 named a, b, c, d."""
    return "i 1,1 nm. a i 2,1 nm. b i 3,1 nm. c i 4,1 nm. d\n"


def widths(run):
    return [image.shape[3] for image in run.images]


@pytest.mark.parametrize(
    "selection, kept",
    [
        ("[0]", [1]),
        ("[-1]", [4]),
        ("[0,2]", [1, 3]),
        ("[1-3]", [2, 3, 4]),
        ("[b]", [2]),
        (".", [4]),
        ("..", [3]),
        ("...", [2]),
        ("[-2--1]", [3, 4]),
        ("[0,.]", [1, 4]),
    ],
)
def test_selection_restricts_a_command(four, selection, kept):
    run = run_script(four + f"k{selection}")
    assert widths(run) == kept


def test_selection_by_name_selects_every_image_of_that_name():
    run = run_script("i 1,1 nm. x i 2,1 i 3,1 nm. x rm[x]")
    assert widths(run) == [2]


def test_selection_applies_to_each_image_command(four):
    run = run_script(four + "r[1,3] 7,1")
    assert widths(run) == [1, 7, 3, 7]


def test_command_without_selection_applies_to_all(four):
    run = run_script(four + "r 5,1")
    assert widths(run) == [5, 5, 5, 5]


@pytest.mark.parametrize(
    "selection, message",
    [
        ("[4]", "out of range"),
        ("[-5]", "out of range"),
        ("[0-9]", "out of range"),
        ("[zz]", "no image named 'zz'"),
    ],
)
def test_bad_selection_is_an_error(four, selection, message):
    error = script_error(four + f"p{selection}")
    assert message in error.message
    assert error.command == "print"
    assert error.where == "test.nnp:2"


def test_selection_on_empty_list_is_an_error():
    assert "out of range" in script_error("p.").message


def test_plus_prefix_keeps_inputs_and_appends_results():
    run = run_script("(1,2) nm. src +r 4,1,1,1,nearest")
    assert run.names == ["src", "src_c1"]
    assert values(run.image(0)) == [[1, 2]]
    assert values(run.image(1)) == [[1, 1, 2, 2]]


def test_plus_prefix_with_selection_appends_one_result_per_selected_image(four):
    run = run_script(four + "+r[0,2] 9,1")
    assert widths(run) == [1, 2, 3, 4, 9, 9]
    assert run.names == ["a", "b", "c", "d", "a_c1", "c_c1"]


def test_plus_prefix_on_a_list_command_is_refused():
    error = script_error("i 1,1 +rm")
    assert "'+'" in error.message


def test_selection_on_a_command_without_images_is_refused():
    error = script_error("i 1,1 srand[0] 3")
    assert error.command == "srand"
    assert "selection" in error.message


# --- variables and substitution ---------------------------------------------------------------


def test_assignment_and_both_reference_forms():
    run = run_script("x=12 e $x e ${x}b e $x.5")
    assert run.lines == ["12", "12b", "12.5"]


def test_assignment_value_is_substituted_when_assigned():
    run = run_script("a=2 b={$a*10} a=5 e $b,$a")
    assert run.lines == ["20,5"]


def test_undefined_variable_is_empty_as_in_gmic():
    assert run_script("e ok\ne [$nothing_here]").lines == ["ok", "[]"]


def test_default_value_is_used_only_when_undefined():
    run = run_script("e ${v=fallback} v=set e ${v=fallback}")
    assert run.lines == ["fallback", "set"]


def test_script_arguments():
    run = run_script('e $1"|"$2"|"$#"|"$* e ${3=none}', args=["a", "b c"])
    assert run.lines == ["a|b c|2|a,b c", "none"]


def test_missing_script_argument_stays_as_written():
    assert run_script("e [$1]").lines == ["[$1]"]  # as G'MIC leaves it


def test_image_count():
    run = run_script("e $! i 1,1 i 1,1 e $!")
    assert run.lines == ["0", "2"]


def test_dollar_dollar_stays_as_written():
    assert run_script("e cost$$5").lines == ["cost$$5"]  # as in G'MIC


def test_expression_reads_variables_and_image_sizes():
    run = run_script("n=3 i 5,4,2,6 e {$n*w},{h},{d},{s},{w#0+$n}")
    assert run.lines == ["15,4,2,6,8"]


def test_expression_with_image_index_from_a_variable():
    run = run_script("i 3,1 i 7,1 k=1 e {w#$k} e {w#($k-1)}")
    assert run.lines == ["7", "3"]


def test_nested_braces_are_evaluated_inside_out():
    run = run_script("n=2 e {2*{$n+1}} e {{1+1}^{1+2}}")
    assert run.lines == ["6", "8"]


def test_expression_result_becomes_argument_text():
    run = run_script("i 10,10 r {w/2},{h*3} e {w}x{h}")
    assert run.lines == ["5x30"]


# --- blocks -----------------------------------------------------------------------------------


def test_repeat_with_braces_and_loop_index():
    assert run_script("repeat 3 { e $> }").lines == ["0", "1", "2"]


def test_repeat_done_form_and_reverse_index():
    assert run_script("repeat 3 e $>:$< done").lines == ["0:2", "1:1", "2:0"]


def test_repeat_zero_times_runs_nothing():
    assert run_script("repeat 0 { e never } e after").lines == ["after"]


def test_nested_repeats_use_the_innermost_index():
    script = """
repeat 2 {
  repeat 3
    e $>
  done
  e outer$>
}
"""
    assert run_script(script).lines == ["0", "1", "2", "outer0", "0", "1", "2", "outer1"]


def test_repeat_with_named_variable():
    run = run_script("repeat 2,i { repeat 2,j { e $i$j } }")
    assert run.lines == ["00", "01", "10", "11"]


def test_repeat_count_from_expression():
    run = run_script("i 4,1 repeat {w-1} e x done")
    assert run.lines == ["x", "x", "x"]


def test_repeat_counts_are_floored_and_negative_ones_run_nothing():  # as in G'MIC
    assert run_script("repeat 2.5 e x done repeat -1 e y done").lines == ["x", "x"]


@pytest.mark.parametrize("count", ["abc"])
def test_bad_repeat_count_is_an_error(count):
    error = script_error(f"e ok\nrepeat {count} e x done")
    assert error.where == "test.nnp:2"
    assert "count must be an integer" in error.message or "neither a number" in error.message


def test_loop_index_outside_a_loop_is_an_error():
    assert "outside of a repeat" in script_error("e $>").message


def test_if_elif_else_picks_one_branch():
    script = """
repeat 4
  if {$>==0}
    e zero
  elif {$>==1}
    e one
  elif {$>==1}
    e never
  else
    e many$>
  fi
done
"""
    assert run_script(script).lines == ["zero", "one", "many2", "many3"]


def test_if_without_else_and_false_condition_does_nothing():
    assert run_script("if 0 e no fi e yes").lines == ["yes"]


def test_if_condition_must_be_a_number_or_an_expression():
    error = script_error("if maybe e x fi")
    assert "'maybe' is neither a number nor an expression" in error.message
    assert run_script('a=2 b=3 if $a<$b" && "$b<4 e yes fi').lines == ["yes"]  # as in G'MIC


def test_do_while_runs_at_least_once_and_until_false():
    run = run_script("n=0\ndo\n  n={$n+1}\n  e $n\nwhile {$n<3}\ndo e once while 0")
    assert run.lines == ["1", "2", "3", "once"]


def test_blocks_on_one_line_and_inside_each_other():
    run = run_script("repeat 2 { if {$>} e odd else e even fi }")
    assert run.lines == ["even", "odd"]


@pytest.mark.parametrize(
    "script, line, message",
    [
        ("e a\nrepeat 2\n  e x\n", 2, "missing 'done'"),
        ("e a\nrepeat 2 {\n  e x\n", 2, "missing '}'"),
        ("e a\n\nif 1\n  e x\n", 3, "missing 'fi'"),
        ("e a\nif 1 e x else e y elif 1 e z fi\n", 2, "after 'else'"),
        ("do\n  e x\n", 1, "missing 'while'"),
        ("e a\ndone\n", 2, "'done' without a matching opening"),
        ("e a\n}\n", 2, "'}' without a matching opening"),
        ("e a\nfi\n", 2, "'fi' without a matching opening"),
        ("e a\n{\n", 2, "'{' outside of a repeat"),
        ("e a\ne {1+2\n", 2, "unbalanced '{'"),
    ],
)
def test_unterminated_or_stray_block_is_an_error_naming_its_line(script, line, message):
    error = script_error(script, file="blocks.nnp")
    assert error.where == f"blocks.nnp:{line}"
    assert message in error.message


def test_block_errors_are_found_before_anything_runs():
    out = io.StringIO()
    interpreter = Interpreter(load_all(), seed=0, out=out, err=io.StringIO())
    with pytest.raises(UserError):
        interpreter.run_source("e first\nrepeat 2\n", "t.nnp")
    assert out.getvalue() == ""


# --- commands defined in scripts --------------------------------------------------------------


def test_defined_command_with_indented_body_and_arguments():
    script = """
greet :
  e "hello "$1
  e args=$*", count="$#
greet world,again
"""
    assert run_script(script).lines == ["hello world", "args=world,again, count=2"]


def test_defined_command_with_one_line_body():
    script = "twice ab\ntwice cd\ntwice : e $1$1"  # a body runs to the next definition
    assert run_script(script).lines == ["abab", "cdcd"]


def test_defined_command_argument_defaults():
    # as in G'MIC, a command that takes arguments takes the next item: the last call has none
    script = "size :\n  e ${1=10}x${2=20}\nsize 3\nsize 3,4\nsize ,7\nsize\n"
    assert run_script(script).lines == ["3x20", "3x4", "10x7", "10x20"]


def test_defined_command_may_be_used_before_its_definition_and_call_others():
    script = "outer 5\nouter :\n  inner {$1*2}\ninner :\n  e got$1\n"
    assert run_script(script).lines == ["got10"]


def test_defined_command_without_argument_does_not_swallow_next_item():
    script = "hello :\n  e hi\nhello e after\n"
    assert run_script(script).lines == ["hi", "after"]


def test_defined_command_works_on_the_image_list():
    script = "grow :\n  r {w*$1},{h*$1}\ni 2,3 grow 2 e {w}x{h}\n"
    assert run_script(script).lines == ["4x6"]


def test_recursive_command_with_a_stop_condition():
    script = """
countdown :
  e $1
  if {$1>0}
    countdown {$1-1}
  fi
countdown 3
"""
    assert run_script(script).lines == ["3", "2", "1", "0"]


def test_endless_recursion_stops_with_an_error():
    error = script_error("forever :\n  forever\nforever\n")
    assert "nested command calls" in error.message
    assert error.command == "forever"
    assert error.where.startswith("test.nnp:")


def test_assignment_inside_a_command_does_not_leak_out():
    script = """
setter :
  local=5
  global=changed
  e inside:$local:$global
global=orig
setter
e ${local=unset}:$global
"""
    assert run_script(script).lines == ["inside:5:changed", "unset:orig"]


def test_defined_command_reads_global_variables():
    script = "show :\n  e $_g[$g]\n_g=7 g=1\nshow\n_g=8\nshow\n"
    assert run_script(script).lines == ["7[]", "8[]"]  # G'MIC: only '_' names are shared


def test_each_call_has_its_own_arguments_and_loop_index():
    script = """
inner :
  repeat 2 { e $1:$> }
repeat 2 {
  inner x$>
  e back$>
}
"""
    assert run_script(script).lines == ["x0:0", "x0:1", "back0", "x1:0", "x1:1", "back1"]


def test_defining_a_command_twice_is_an_error():
    error = script_error("f : e 1\nf : e 2\n")
    assert "defined twice" in error.message
    assert error.where == "test.nnp:2"


def test_error_inside_a_defined_command_names_the_body_line():
    error = script_error("f :\n  e ok\n  bogus_thing\nf\n", file="def.nnp")
    assert error.where == "def.nnp:3"
    assert "unknown command 'bogus_thing'" in error.message


def test_lexer_separates_definitions_from_main_program():
    main, definitions = lex("e 0\na : e 1\n  e 2\ne 3\nb :\n  e 4\ne 5\n", "x")
    assert [i.text for i in main] == ["e", "0", "e", "5"]
    assert [i.text for i in definitions["a"].items] == ["e", "1", "e", "2", "e", "3"]  # as G'MIC
    assert [i.text for i in definitions["b"].items] == ["e", "4"]  # an indented body ends
    main, definitions = lex("c :\ne 6\ne 7\n", "x")
    assert [i.text for i in definitions["c"].items] == ["e", "6", "e", "7"]


# --- property: any script fails cleanly -------------------------------------------------------

SAFE_COMMANDS = sorted(
    name
    for name, entry in COMMANDS.commands().items()
    if entry.function.__module__ in ("nnpipe.commands.images", "nnpipe.commands.control") and name != "output"
) + ["i", "r", "n", "k", "rm", "nm", "p", "e"]

KEYWORDS = ["repeat", "done", "if", "elif", "else", "fi", "do", "while", "{", "}"]
PIECES = [
    "$",
    "$>",
    "$<",
    "$!",
    "$#",
    "$*",
    "$1",
    "$2",
    "${1=3}",
    "${x}",
    "$x",
    "${",
    "$$",
    "x=2",
    "y=",
    "[0]",
    "[-1]",
    "[0,1]",
    "[1-3]",
    "[x]",
    "[",
    "]",
    ".",
    "..",
    "...",
    "+",
    "-",
    ",",
    ";",
    "(",
    ")",
    "(1,2;3,4)",
    "(1^2/3)",
    "(1,2",
    "{1+2}",
    "{w#0}",
    "{w#",
    "{",
    "}",
    "{{",
    "}}",
    "#",
    "\\",
    '"',
    "%",
    "^",
    "/",
    ":",
    "*",
    "?",
    "=",
    "nearest",
    "cubic",
    "x",
    "y",
    "z",
    "c",
    "gaussian",
    "uniform",
    "50%",
    "200%",
    "1.5",
    "-1",
    "1e9",
    "inf",
    "nan",
    "3,2",
    "2,2,2,2,1",
    "{1/0}",
    "{sqrt(-1)}",
    "{min(2)}",
    "{max(1,2)}",
    "{2^999}",
    "{$1*2}",
    "f :",
    "g : f $1",
    "im",
    "whds",
]
NUMBERS = st.integers(-3, 9).map(str)
ATOMS = st.one_of(
    st.sampled_from(SAFE_COMMANDS),
    st.sampled_from(KEYWORDS),
    st.sampled_from(PIECES),
    NUMBERS,
    st.text(max_size=5),
)
COMMAND = st.builds(
    lambda prefix, name, selection, args: f"{prefix}{name}{selection} {args}",
    st.sampled_from(["", "", "+", "-"]),
    st.sampled_from(SAFE_COMMANDS),
    st.sampled_from(["", "", "[0]", "[-1]", ".", "[0-1]", "[9]"]),
    st.lists(st.one_of(NUMBERS, st.sampled_from(PIECES)), max_size=4).map(",".join),
)
LINE = st.lists(st.one_of(COMMAND, ATOMS), max_size=6).map(" ".join)
SCRIPT = st.one_of(
    st.lists(st.tuples(st.sampled_from(["", "", "  "]), LINE), max_size=8).map(
        lambda lines: "\n".join(indent + line for indent, line in lines)
    ),
    st.lists(ATOMS, max_size=20).map("".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCRIPT, st.lists(st.sampled_from(["a", "1", "", "2,3"]), max_size=2))
def test_any_script_raises_nothing_but_user_error(text, args):
    interpreter = Interpreter(load_all(), seed=0, quiet=True, out=io.StringIO(), err=io.StringIO())
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        try:
            interpreter.run_source(text, "fuzz.nnp", args)
        except UserError as error:
            assert str(error)  # every error says something
            assert "\n" not in str(error)


def test_error_inside_a_status_substitution_names_the_script_line():
    error = script_error("echo fine\n(1,2) echo ${-normalize\\ 1}", file="st.nnp")
    assert error.where == "st.nnp:2"
    assert str(error).startswith("st.nnp:2: normalize: ")


@pytest.mark.parametrize(
    "script, printed",
    [
        ("echo [${1}]", "[${1}]"),
        ("echo [${-1}]", "[${-1}]"),
        ("pair a\npair : echo [${2}]", "[${2}]"),
    ],
)
def test_a_missing_argument_in_braces_stays_as_written(script, printed):
    """As `$2` without a second argument does (it crashed with a TypeError)."""
    assert run_script(script).lines == [printed]
