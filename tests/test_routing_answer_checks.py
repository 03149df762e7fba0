"""The math answer checks the cascade's gate reads."""

from __future__ import annotations

import pytest

from costmesh.routing.answer_checks import FEATURE_NAMES, evaluate, is_math_problem, math_checks

PROBLEM = ("Rafaela got a $20 tip from each of 40 customers. Julieta received 10% less money in tips than "
           "Rafaela. How much money did they receive as tips altogether?")
RIGHT = ("Rafaela received 40 x $20 = $<<40*20=800>>800.\nJulieta received 800 x 10% = $80 less, so "
         "800 - 80 = $<<800-80=720>>720.\nTogether: 800 + 720 = $<<800+720=1520>>1520.\n#### 1520")
WRONG_SUM = RIGHT.replace("<<800+720=1520>>1520", "<<800+720=1620>>1620").replace("#### 1520", "#### 1620")


@pytest.mark.parametrize("expression,value", [
    ("3 x 4 + 10%", 12.1), ("(2 + 3) * 4", 20.0), ("1,200 / 4", 300.0), ("2^3", 8.0), ("-5 + 2", -3.0),
    ("7 × 6 ÷ 2", 21.0),
])
def test_evaluate_arithmetic(expression, value):
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize("expression", ["__import__('os')", "a + 1", "2 ** 1000000", "1 / 0", "", "len([1])"])
def test_evaluate_refuses_anything_else(expression):
    assert evaluate(expression) is None


def test_a_right_answer_passes_every_check():
    checks = math_checks(PROBLEM, RIGHT)
    assert checks.equations >= 3 and checks.wrong == 0
    assert checks.has_final and checks.final_integer and checks.final_matches_last
    assert checks.prompt_numbers_used == pytest.approx(1.0)
    assert checks.unsupported == 0
    assert len(checks.features()) == len(FEATURE_NAMES)


def test_wrong_arithmetic_is_found():
    checks = math_checks(PROBLEM, WRONG_SUM)
    assert checks.wrong == 1
    assert checks.features()[FEATURE_NAMES.index("arith_wrong_any")] == 1.0


def test_inline_equations_are_checked_too():
    checks = math_checks(PROBLEM, "First 40 x 20 = 800. Then 800 - 80 = 710.\n#### 710")
    assert (checks.equations, checks.wrong) == (2, 1)


def test_missing_or_fractional_final_answer_and_invented_numbers():
    no_final = math_checks(PROBLEM, "They got a lot of money in tips.")
    assert not no_final.has_final and no_final.equations == 0
    fractional = math_checks(PROBLEM, "40 x 20 = <<40*20=800>>800. 800 x 37 = <<800*37=29600>>29600\n#### 8.57")
    assert fractional.has_final and not fractional.final_integer and not fractional.final_matches_last
    assert fractional.unsupported == 1  # 37 is in neither the problem nor an earlier result


def test_is_math_problem():
    assert is_math_problem(PROBLEM)
    assert is_math_problem("Jana has twenty seven puppies and two thirds of them are Pomeranians. How many are not?")
    assert not is_math_problem("What is 2 + 2?")
    assert not is_math_problem("Write two poems about one cat and one dog for my daughter, please, today")
    assert not is_math_problem("Which number is largest of these 3 options?\nA. 1\nB. 2\nC. 3\nAnswer: the one")
