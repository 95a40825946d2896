"""Where a problem sits in a YAML text: the line shown, highlighted, in the console's editors."""

from __future__ import annotations

from palier.yaml_lines import line_of, parts_of, syntax_problem

DOCUMENT = """\
actions: []
rules:
- id: base
  event: purchase
  effect:
    type: points_per_amount
    points: 1
- id: weekend
  conditions:
    weekdays: [sat, sun, funday]
"""


def test_a_field_path_is_found_at_its_line() -> None:
    assert parts_of("rules[1].conditions.weekdays[2]") == ["rules", 1, "conditions", "weekdays", 2]
    assert line_of(DOCUMENT, "actions") == 1
    assert line_of(DOCUMENT, "rules[0].effect.points") == 7
    assert line_of(DOCUMENT, "rules[1].conditions.weekdays[2]") == 10
    assert line_of(DOCUMENT, "rules[1]") == 8


def test_a_missing_field_points_at_the_deepest_part_that_exists() -> None:
    assert line_of(DOCUMENT, "rules[1].name") == 8  # the rule that lacks it
    assert line_of(DOCUMENT, "rules[1].conditions.channels") == 9
    assert line_of(DOCUMENT, "rules[7].id") == 2  # no such rule: the list
    assert line_of(DOCUMENT, "document") == 1


def test_a_syntax_error_is_reported_at_its_line() -> None:
    problem = syntax_problem("rules:\n- id: a\n  effect: {type: x\n")
    assert problem is not None and problem.line == 4 and problem.code == "invalid_yaml"
    assert syntax_problem(DOCUMENT) is None
    assert line_of("rules: [unclosed\n", "rules") is None
