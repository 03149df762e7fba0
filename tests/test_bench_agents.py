"""The agents bench's own tools: the calculator evaluates arithmetic only, bounded; tool errors
come back as error results, never as exceptions."""

from __future__ import annotations

import pytest

from costmesh.tooling.bench.agents import calculate, run_tool, workload


def test_the_calculator_evaluates_arithmetic():
    assert calculate("(17 + 5) * 3") == 66
    assert calculate("-2 ** 3 + 10 / 4") == pytest.approx(-5.5)


@pytest.mark.parametrize("expression", ["__import__('os')", "2 ** 1000", "x + 1", "1" * 201, "[1, 2]"])
def test_the_calculator_refuses_anything_else(expression):
    with pytest.raises((ValueError, SyntaxError)):
        calculate(expression)


def test_tool_failures_are_results_marked_as_errors():
    assert run_tool("calculator", '{"expression": "6 * 7"}') == ("42", False)
    assert run_tool("calculator", '{"expression": "1/0"}') == ("error: ZeroDivisionError", True)
    assert run_tool("calculator", "{not json") == ("error: JSONDecodeError", True)
    assert run_tool("lookup", '{"term": "Average speed"}')[1] is False
    assert run_tool("search", "{}") == ("unknown tool 'search'", True)


def test_the_workload_mixes_word_problems_and_subject_questions():
    questions = workload(10)
    assert len(questions) == 10 and len(set(questions)) == 10
    assert sum(q.startswith("(") for q in questions) == 5
