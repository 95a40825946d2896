"""``palier program apply / export / action`` and ``palier jobs run birthdays`` on a SQLite file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from palier.clock import SystemClock
from palier.db import Database
from tests.cli.test_commands import cli_db, database_url, invoke, wide_console  # noqa: F401
from tests.services import factories as f

RULES = """
actions:
  - id: newsletter
    name: {en: Newsletter sign-up, fr: Inscription à la newsletter}
    points: 20
    limit: {count: 1, per: ever}
rules:
  - id: base
    name: {en: 1 point per euro, fr: 1 point par euro}
    event: purchase
    effect: {type: points_per_amount, points: 1, per_amount: 100}
  - id: birthday
    name: {en: Birthday gift, fr: Cadeau d'anniversaire}
    event: birthday
    effect: {type: fixed, points: 100}
"""


def test_apply_export_action_and_birthdays(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    clock = SystemClock()
    program = f.make_program(cli_db, clock)  # type: ignore[arg-type]
    today = clock.now().astimezone(ZoneInfo("Europe/Paris")).date()
    member = f.enrol(cli_db, clock, program, birthday=date(1990, today.month, min(today.day, 28)))  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    file.write_text(RULES, encoding="utf-8")
    applied = invoke("program", "apply", program.id, str(file))
    assert applied.exit_code == 0, applied.output
    assert "Rules version 1 applied: 2 rules, 0 campaigns, 1 action type;" in applied.output
    exported = invoke("program", "export", program.id)
    assert exported.exit_code == 0 and "version 1" in exported.output and "per_amount: 100" in exported.output
    out = tmp_path / "out.yaml"
    assert invoke("program", "export", program.id, "-o", str(out)).exit_code == 0
    again_applied = invoke("program", "apply", program.id, str(out))  # an export applies as it is: no new version
    assert again_applied.exit_code == 0 and "The rules are unchanged: version 1 stays in force." in again_applied.output
    paid = invoke("program", "action", program.id, member.id, "newsletter", "camille@example.fr")
    assert paid.exit_code == 0 and "Newsletter sign-up: +20 points" in paid.output, paid.output
    again = invoke("program", "action", program.id, member.id, "newsletter", "other@example.fr")
    assert again.exit_code == 2 and "error action_limit_reached" in again.output
    if today.day <= 28:
        gifts = invoke("jobs", "run", "birthdays", "--program", program.id)
        assert gifts.exit_code == 0, gifts.output
        assert invoke("jobs", "run", "birthdays", "--program", program.id).exit_code == 0
        assert f.balance(cli_db, program, member).available == 20 + 100
    assert invoke("verify", "--program", program.id).exit_code == 0


def test_a_bad_rules_file_is_refused_with_the_path(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    bad = RULES.replace("per: ever", "per: fortnight").replace("points: 20", "points: many")
    file.write_text(bad.replace("    event: birthday", "    event: birthday\n    colour: red"), encoding="utf-8")
    refused = invoke("program", "apply", program.id, str(file))
    assert refused.exit_code == 2
    assert "error invalid_type: The rules were not applied: 3 problems in rules.yaml" in refused.output
    assert "(actions[0].points)" in refused.output and "more problem" not in refused.output
    # every problem, at the line an editor jumps to (file:line), with the path of its field
    assert f"{file}:5  actions[0].points  invalid_type:" in refused.output
    assert f"{file}:6  actions[0].limit.per  invalid_choice: Input should be 'ever'" in refused.output
    assert f"{file}:15  rules[1].colour  unknown_field:" in refused.output
    assert "version 0" in invoke("program", "export", program.id).output


def test_a_date_that_does_not_exist_is_refused_at_its_line(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    """YAML reads 2026-13-01 as a date and fails building it: a refusal with its line, not a traceback."""
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    campaign = "campaigns:\n  - id: sale\n    name: {en: Sale}\n    starts: 2026-13-01\n    ends: 2026-12-31\n"
    file.write_text(campaign + RULES, encoding="utf-8")
    refused = invoke("program", "apply", program.id, str(file))
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "invalid_rules_file" in refused.output and "line 4" in refused.output
    assert "version 0" in invoke("program", "export", program.id).output


def test_a_field_written_twice_is_refused_at_its_line(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    file.write_text(RULES.replace("points: 20\n", "points: 20\n    points: 200\n"), encoding="utf-8")
    refused = invoke("program", "apply", program.id, str(file))
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert f"{file}:5  actions[0].points  duplicate_key: written twice in the same place, at lines 5 and 6" in (
        refused.output
    )
    assert "version 0" in invoke("program", "export", program.id).output


def test_brackets_nested_thousands_deep_are_refused_not_a_crash(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    file.write_text("rules: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    refused = invoke("program", "apply", program.id, str(file))
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "invalid_rules_file" in refused.output and "nested too deeply" in refused.output


def test_a_rule_naming_an_unknown_reward_is_refused_at_its_line(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    """Refusals found against the database (a reward not in the catalog) are shown like the file's own."""
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    file = tmp_path / "rules.yaml"
    step = (
        "  - id: ten-for-hundred\n    name: {en: Ten, fr: Dix}\n    event: purchase\n"
        "    effect: {type: spend_step, step: 10000, reward_id: rwd_…}\n"
    )
    file.write_text(RULES + step, encoding="utf-8")
    refused = invoke("program", "apply", program.id, str(file))
    assert refused.exit_code == 2, refused.output
    assert "error unknown_reward: The rules were not applied: 1 problem in rules.yaml" in refused.output
    assert f"{file}:19  rules[2].effect.reward_id  unknown_reward: no reward 'rwd_…' in this program's catalog." in (
        refused.output
    ), refused.output
    assert "version 0" in invoke("program", "export", program.id).output


def test_an_empty_or_unreadable_rules_file_changes_nothing(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    """An empty file (a `>` that truncated it) would remove every earning rule at a stroke: refused, as the
    console refuses a cleared editor; `rules: []` still says it on purpose."""
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    assert invoke("program", "apply", program.id, str(rules)).exit_code == 0
    for text in ("", "   \n", "# nothing yet\n"):
        rules.write_text(text, encoding="utf-8")
        refused = invoke("program", "apply", program.id, str(rules))
        assert refused.exit_code == 2, refused.output
        assert refused.output.startswith("error empty_document: ") and "rules: []" in refused.output, refused.output
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(RULES.replace("Inscription", "Abonn\xe9").encode("cp1252"))
    unreadable = invoke("program", "apply", program.id, str(latin))
    assert unreadable.exit_code == 2, unreadable.output
    assert unreadable.output.startswith("error invalid_rules_file: ") and "UTF-8" in unreadable.output
    assert "version 1" in invoke("program", "export", program.id).output  # still the first version
    rules.write_text("rules: []\n", encoding="utf-8")
    assert invoke("program", "apply", program.id, str(rules)).exit_code == 0


def test_export_to_a_folder_that_does_not_exist_says_so(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    target = tmp_path / "no-such-folder" / "current.yaml"
    refused = invoke("program", "export", program.id, "-o", str(target))
    assert refused.exit_code == 2, refused.output
    assert refused.output.startswith("error cannot_write: ") and refused.output.rstrip().endswith("(--output)")


def test_program_show_says_the_rules_set_the_rate_once_applied(cli_db: Database, tmp_path: Path) -> None:  # noqa: F811
    """The base rate no longer decides what a purchase earns once rules are applied: show says so."""
    program = f.make_program(cli_db, SystemClock())  # type: ignore[arg-type]
    before = invoke("program", "show", program.id)
    assert "1 point per 100 minor units" in before.output, before.output
    file = tmp_path / "rules.yaml"
    file.write_text(RULES.replace("points: 1, per_amount: 100", "points: 2, per_amount: 100"), encoding="utf-8")
    assert invoke("program", "apply", program.id, str(file)).exit_code == 0
    after = invoke("program", "show", program.id)
    assert "1 point per 100 minor units" not in after.output, after.output
    assert "by the earning rules, version 1 (palier program export)" in after.output, after.output
