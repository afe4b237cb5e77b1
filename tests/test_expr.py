"""The `{expression}` evaluator: our own parser, checked value by value."""

import math

import numpy as np
import pytest
from conftest import run_script, script_error
from hypothesis import given, settings
from hypothesis import strategies as st

from nnpipe.errors import UserError
from nnpipe.expr import evaluate
from nnpipe.numbers import format_number, format_value


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1+2*3", 7),
        ("(1+2)*3", 9),
        ("10-4-3", 3),
        ("2*3/4", 1.5),
        ("8/2/2", 2),
        ("7%3", 1),
        ("-7%3", 2),
        ("7%-3", -2),
        ("7.5%2", 1.5),
        ("1+7%3*2", 3),
        ("2^3", 8),
        ("2^3^2", 64),
        ("2^(3^2)", 512),
        ("(2^3)^2", 64),
        ("2^-1", 0.5),
        ("2*3^2", 18),
        ("-3", -3),
        ("--3", 3),
        ("-2^2", 4),
        ("+4", 4),
        ("3--2", 5),
        ("-(1+2)*2", -6),
        ("1.5e2", 150),
        (".5", 0.5),
        ("2.", 2),
        ("1e-3*1000", 1),
    ],
)
def test_arithmetic_and_precedence(text, expected):
    assert evaluate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1<2", 1),
        ("2<1", 0),
        ("2<=2", 1),
        ("3>=4", 0),
        ("3>2", 1),
        ("2==2.0", 1),
        ("2!=2", 0),
        ("1+1==2", 1),
        ("1<2==1", 1),
        ("1&&0", 0),
        ("1&&2", 1),
        ("0||0", 0),
        ("0||3", 1),
        ("!0", 1),
        ("!5", 0),
        ("!!7", 1),
        ("1||0&&0", 1),
        ("(1||0)&&0", 0),
        ("1<2&&3<4", 1),
        ("!1==0", 1),
        ("1?2:3", 2),
        ("0?2:3", 3),
        ("0?1:0?2:3", 3),
        ("1?0?4:5:6", 5),
        ("2>1?10:20", 10),
        ("1+(0?5:6)", 7),
    ],
)
def test_comparisons_logic_and_ternary(text, expected):
    assert evaluate(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("min(3,1,2)", 1),
        ("max(3,1,2)", 3),
        ("min(4)", 4),
        ("abs(-2.5)", 2.5),
        ("sqrt(16)", 4),
        ("exp(0)", 1),
        ("exp(1)", math.e),
        ("log(exp(2))", 2),
        ("round(2.5)", 3),
        ("round(2.4)", 2),
        ("round(-2.6)", -3),
        ("round(7.3,0.5)", 7.5),
        ("floor(-1.5)", -2),
        ("floor(1.9)", 1),
        ("ceil(1.1)", 2),
        ("ceil(-1.1)", -1),
        ("max(1,min(5,3))+abs(-1)", 4),
        ("sqrt(3^2+4^2)", 5),
        ("pi", math.pi),
    ],
)
def test_functions(text, expected):
    assert evaluate(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, printed",
    [
        ("round(7.3,0.5)", "7.5"),
        ("round(-2.5)", "-3"),
        ("round(2.5)", "3"),
        ("round(-0.5)", "-1"),
        ("1/3", "0.33333333333333331"),
        ("1e16", "10000000000000000"),
        ("2.5e20", "2.5e+20"),
        ("1/0", "inf"),
        ("-1/0", "-inf"),
        ("[1,2]+1", "2,3"),
    ],
)
def test_results_print_as_gmic_prints_them(text, printed):
    assert run_script(f"e {{{text}}}").lines == [printed]


def test_white_space_is_ignored():
    assert evaluate("  1 +  2 *\t3 ") == 7


def test_script_variables_are_substituted_not_read_by_name():
    assert run_script("a=3 e {$a*2}").lines == ["6"]
    assert "unknown name 'a'" in script_error("a=3 e {a*2}").message  # as in G'MIC


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1/0", math.inf),
        ("-1/0", -math.inf),
        ("5%0", math.nan),
        ("10^400", math.inf),
        ("exp(1000)", math.inf),
        ("log(0)", -math.inf),
        ("nan>=0.01", 0),
        ("inf>1e308", 1),
    ],
)
def test_no_arithmetic_error_only_infinities_and_nans(text, expected):
    value = evaluate(text)
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("foo+1", "unknown name 'foo'"),
        ("nosuch(1)", "unknown function 'nosuch()'"),
        ("min()", "wrong number of arguments"),
        ("abs(1,2)", "wrong number of arguments"),
        ("1+", "unexpected"),
        ("(1+2", "expected ')'"),
        ("1 2", "unexpected '2'"),
        ("1?2", "expected ':'"),
        ("2 @ 3", "unexpected character '@'"),
    ],
)
def test_bad_expressions_are_user_errors(text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(text)


def test_deep_nesting_is_a_user_error_not_a_crash():
    with pytest.raises(UserError):
        evaluate("(" * 5000 + "1" + ")" * 5000)


def test_image_attribute_without_images_is_zero():
    assert evaluate("w") == 0  # as in G'MIC


@pytest.mark.parametrize(
    "value, text",
    [  # nnpipe's own numbers (losses, statistics)
        (3, "3"),
        (3.0, "3"),
        (-2.0, "-2"),
        (0.0, "0"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (True, "1"),
        (False, "0"),
        (1e20, "1e+20"),
        (123456789012.0, "123456789012"),
        (float("inf"), "inf"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_integer_results_print_without_decimals_in_scripts():
    assert run_script("e {6/2},{7/2},{2^10},{sqrt(2)*sqrt(2)>1.99}").lines == ["3,3.5,1024,1"]


# --- image attributes, through the interpreter ------------------------------------------------


def test_sizes_of_the_last_image_and_of_image_i():
    run = run_script(
        "i 2,3,4,5 i 6,7 e {w},{h},{d},{s},{wh},{whd},{whds} e {w#0},{h#0},{d#0},{s#0}"
        " e {wh#0},{whd#0},{whds#0},{w#-2},{w#1}"
    )
    assert run.lines == ["6,7,1,1,42,42,42", "2,3,4,5", "6,24,120,2,6"]


def test_value_statistics():
    run = run_script("(1,2;3,10) e {im},{iM},{ia} i 1,1,1,1,-4 e {im#0},{iM#-2},{ia#-1}")
    assert run.lines == ["1,10,4", "1,10,-4"]


def test_image_index_may_be_an_expression():
    run = run_script("i 1,1 i 2,1 i 3,1 e {w#(1+1)},{w#-(1)},{w#1+100}")
    assert run.lines == ["3,3,102"]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("w#nan", "image index #nan is NaN"),
        ("i(#(0/0),0)", "image index #-nan is NaN"),
        ("vector(#0)", "the size must be an integer > 0 (got 0)"),
        ("vector(#1e400)", "the size must be an integer > 0 (got inf)"),
        ("vector30000000(0)", "30000000 values are more than nnpipe's limit of 16,777,216"),
        ("vector3(#2)", "'#k' is an image only as the first argument of i(), I(), j(), J()"),
    ],
)
def test_bad_image_index_or_vector_size_is_a_one_line_error(expression, message):
    """(an index beyond the list wraps around, as G'MIC's: the differential cases)"""
    error = script_error(f"i 1,1 i 1,1 i 1,1\ne {{{expression}}}")
    assert message in error.message
    assert error.where == "test.nnp:2"


def test_expression_error_in_script_names_the_line_and_position():
    error = script_error("e fine\ni 3,3 r {w/(h-3)+@}", file="div.nnp")
    assert error.where == "div.nnp:2"
    assert "unexpected character '@' at position 9" in error.message


def test_mean_of_a_noisy_image_matches_numpy():
    run = run_script("i 50,40,1,3 noise 1 e {ia},{im},{iM}", seed=3)
    image = run.image()
    mean, low, high = (float(v) for v in run.lines[0].split(","))
    assert mean == pytest.approx(float(np.mean(image)), abs=1e-6)
    assert low == pytest.approx(float(image.min()))
    assert high == pytest.approx(float(image.max()))


EXPRESSION_PIECES = [
    "1",
    "0",
    "2.5",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "<",
    "<=",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "?",
    ":",
    "(",
    ")",
    ",",
    "#",
    "w",
    "h",
    "im",
    "ia",
    "a",
    "b",
    "e",
    "pi",
    "min(",
    "max(",
    "abs(",
    "sqrt(",
    "exp(",
    "log(",
    "round(",
    "floor(",
    "ceil(",
    "pow(",
    "sin(",
    "1e308",
    "1e-320",
    " ",
    "x",
    "@",
    ".",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EXPRESSION_PIECES), max_size=14).map("".join))
def test_any_expression_gives_a_number_or_a_user_error(text):
    try:
        value = evaluate(text, [np.ones((1, 1, 2, 3), np.float32)])
    except UserError:
        return
    assert isinstance(format_value(value), str)


@pytest.mark.parametrize("first, second", [("x=1;y=++x;x", "x=1;y=+ +x;x"), ("x=1;y=--x;x", "x=1;y=- -x;x")])
def test_parsed_forms_cached_by_text_keep_doubled_signs_apart(first, second):
    """`++x` increments, `+ +x` does not (as G'MIC): whichever is parsed first, the other
    text must not reuse its tree."""
    expected = {"x=1;y=++x;x": 2, "x=1;y=+ +x;x": 1, "x=1;y=--x;x": 0, "x=1;y=- -x;x": 1}
    for text in (first, second, first):
        assert evaluate(text) == expected[text]
    for text in (second, first):
        assert evaluate(text + ";x") == expected[text]  # a text not cached yet


@pytest.mark.parametrize("texts, position", [(("1+nosuch", "100000 + nosuch"), 10)])
def test_error_position_points_into_the_text_written_not_a_cached_one(texts, position):
    for text in texts:
        with pytest.raises(UserError) as error:
            evaluate(text)
    assert f"'{texts[-1]}'" in error.value.message and f"position {position}" in error.value.message


def test_run_time_error_names_the_text_written_not_a_cached_one():
    evaluate("V=[1,2];V[0]")
    with pytest.raises(UserError) as error:
        evaluate("V=[1,2];V[7]")
    assert "'V=[1,2];V[7]'" in error.value.message and "index 7" in error.value.message


@pytest.mark.parametrize("text, expected", [("fact(1e10)", math.inf), ("fact(nan)", math.nan)])
def test_factorial_of_huge_or_nan_answers_at_once(text, expected):
    assert evaluate(text) == pytest.approx(expected, nan_ok=True)
