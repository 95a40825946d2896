"""The README's walk-through with curl, run as a new user runs it, and what its ``# ->`` lines promise.

``palier demo`` starts in an empty folder; the values its banner prints (API, Admin key, POS key, Member,
Program) are copied into the shell as the README's first lines say, and every command of the "A walk-through
with curl" block, then of the rewards walk-through (redeem, use at the till, give back), then the erasure
example, is run by bash exactly as written, one after the other: the ids the README tells the user to copy
from an answer (``C=mem_…``, ``REWARD=rwd_…``, ``CODE=…``, ``Z=mem_…``) are taken from that answer. Every curl
must get a 2xx, and each answer must hold the literal values of the ``# ->`` line under its command
(``"pending":true``, ``"available":80``…; what the README writes ``…`` is left out).

SQLite only, and not in the database the other tests get: the walk-through starts from ``make demo``, and the
demo always lives in ``./palier.db`` of the folder it runs in, whatever ``PALIER_DATABASE_URL`` says.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.crash_helpers import free_port

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the README's walk-through is curl commands")


@dataclass
class Step:
    """One command of a README block, and the ``# ->`` comment under it, if any (with the lines that go on with
    its JSON; not the words in brackets after it)."""

    command: str
    promise: str | None = None
    answer: Any = None


def shell_block(heading: str, first_line: str) -> str:
    """The first ``sh`` block of the README section ``heading`` whose first line starts with ``first_line``."""
    section = README.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"^```sh\n(.*?)^```", section, flags=re.M | re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"README.md: no sh block starting {first_line!r} under '## {heading}'")


def steps_of(block: str) -> list[Step]:
    """The commands of a block (a command runs over several lines inside its quotes or after a backslash)."""
    steps: list[Step] = []
    pending = ""
    answer_goes_on = False
    for line in block.splitlines():
        if not pending and line.lstrip().startswith("#"):
            if line.startswith("# ->") and steps and steps[-1].promise is None:
                steps[-1].promise = line.removeprefix("# ->")
                answer_goes_on = True
            elif answer_goes_on and re.match(r"#\s+[\"{\[]", line):
                steps[-1].promise = f"{steps[-1].promise}{line[1:].strip()}"
            else:
                answer_goes_on = False
            continue
        answer_goes_on = False
        if not pending and not line.strip():
            continue
        pending += line + "\n"
        if line.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the JSON body goes on on the next line
            continue
        steps.append(Step(pending.strip()))
        pending = ""
    assert not pending, f"README.md: a command is never closed: {pending}"
    return steps


def promised(promise: str) -> list[tuple[str, Any]]:
    """The ``"key":value`` pairs of a ``# ->`` comment whose value is written out (a number, true, false, null, or a
    string without ``…``)."""
    pairs = re.findall(r'"(\w+)":(-?\d+|true|false|null|"[^"…]*")(?=[,}\]])', promise)
    return [(key, json.loads(value)) for key, value in pairs]


def values_of(answer: Any, key: str) -> list[Any]:
    """The values of ``key`` in ``answer`` at the shallowest depth where it appears."""
    level = [answer]
    while level:
        found = [item[key] for item in level if isinstance(item, dict) and key in item]
        if found:
            return found
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item if isinstance(item, list) else [])
        ]
    return []


# bash runs each command; curl is the README's, with its status put on a last line of its own
CURL = 'curl() { command curl -sS -w "\\n%{http_code}" "$@"; }\n'


def run(step: Step, variables: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "-c", f"set -eu\n{CURL}{step.command}"],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{step.command}\nfailed ({done.returncode}): {done.stderr}{done.stdout}"
    body, _, status = done.stdout.rpartition("\n")
    assert status.startswith("2"), f"{step.command}\nanswered {status}: {body}"
    step.answer = json.loads(body) if body.strip() else None


def assign(step: Step, variables: dict[str, str], copied: dict[str, Callable[[Any], str]], answer: Any) -> None:
    """``NAME=value``: a value the README says to copy (``…`` in it) comes from the banner or the answer above;
    any other is the shell's (``ADMIN_KEY=$KEY``)."""
    name, value = step.command.split("=", 1)
    if name in copied:
        variables[name] = copied[name](answer)
        return
    assert "…" not in value.split("#", 1)[0], f"README.md asks to copy {step.command!r}: this test knows not whence"
    done = subprocess.run(
        ["bash", "-c", f'{step.command}\nprintf %s "${name}"'],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        check=True,
    )
    variables[name] = done.stdout


def walk(block: str, variables: dict[str, str], copied: dict[str, Callable[[Any], str]]) -> list[Step]:
    steps = steps_of(block)
    answer: Any = None
    for step in steps:
        if re.match(r"^[A-Z_]+=", step.command):
            assign(step, variables, copied, answer)
        else:
            run(step, variables)
            answer = step.answer
    return steps


def keep(steps: list[Step], method: str, path: str) -> Step:
    """The step whose curl sends ``method`` to a URL ending with ``path`` (a regular expression)."""
    for step in steps:
        sends = re.search(r"-X (\w+)", step.command)
        url = re.search(r'(?:^|\s)"?\$API(\S*?)"?(?:\s|$)', step.command)
        if (sends.group(1) if sends else "GET") == method and url and re.fullmatch(path, url.group(1)):
            return step
    raise AssertionError(f"README.md: no {method} {path} in the walk-through")


def assert_as_promised(step: Step, *, more: dict[str, int] | None = None) -> None:
    assert step.promise, f"README.md: no '# ->' under {step.command}"
    pairs = promised(step.promise)
    assert pairs, f"README.md: the '# ->' under {step.command} promises nothing checkable"
    for key, value in pairs:
        counted = isinstance(value, int) and not isinstance(value, bool)
        expected = value + (more or {}).get(key, 0) if counted else value
        assert expected in values_of(step.answer, key), (
            f"{step.command}\nREADME.md promises {key}={expected!r}; the answer: {step.answer}"
        )


def assert_every_promise(
    steps: list[Step], *, more: dict[str, int] | None = None, only_in: tuple[Step, ...] = ()
) -> None:
    """Every ``# ->`` of a block holds (``more`` added to the README's figures in the steps ``only_in``); a block
    left with none would test nothing."""
    promises = [step for step in steps if step.promise]
    assert len(promises) >= 4, f"README.md: only {len(promises)} '# ->' left in the walk-through"
    for step in promises:
        assert_as_promised(step, more=more if step in only_in else None)


# --- the demo, as `make demo` starts it ----------------------------------------------------------------------


@contextlib.contextmanager
def demo(folder: Path) -> Iterator[dict[str, str]]:
    """``palier demo`` in ``folder`` (5 members: the walk-through needs only the banner's one), serving on a
    free port; yields the banner's values once ``/health`` answers."""
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PALIER_")}  # a fresh machine
    env.update(COLUMNS="200", PYTHONUNBUFFERED="1")
    log = folder / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "palier", "demo", "--members", "5", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"palier demo exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"palier demo did not answer within 90 s:\n{log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        banner = log.read_text()
        labels = {"API": r"API", "KEY": r"Admin key", "POS_KEY": r"POS key", "M": r"Member", "P": r"Program"}
        values = {}
        for name, label in labels.items():
            found = re.search(rf"^\W*{label}\s+(\S+)", banner, flags=re.M)
            assert found, f"the banner has no {label} line:\n{banner}"
            values[name] = found.group(1)
        yield values
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# the README's "the answer above" for each id it asks the user to copy
FROM_THE_ANSWER: dict[str, Callable[[Any], str]] = {
    "C": lambda enrolled: enrolled["id"],  # Camille's id
    "REWARD": lambda offers: next(o["reward"]["id"] for o in offers if o["title"] == "Café crème offert"),
    "CODE": lambda redeemed: redeemed["coupon"]["code"],
}

# on a weekday morning (07:00-10:00 in Paris) and on the demo's gourmet weekend, a ×2 rule of the demo doubles
# the points per euro: the README says so beside the purchase's answer
DOUBLING = {"weekday-mornings", "weekend-double"}


def test_the_readme_walk_through_rewards_and_erasure_run_as_written(tmp_path: Path) -> None:
    with demo(tmp_path) as banner:
        copied = {name: (lambda _answer, value=value: value) for name, value in banner.items()} | FROM_THE_ANSWER
        variables: dict[str, str] = {}
        steps = walk(shell_block("A walk-through with curl", "API="), variables, copied)
        bought = keep(steps, "POST", "/v1/events/purchases")
        balance = keep(steps, "GET", r"/v1/members/\$C/balance")
        returned = keep(steps, "POST", "/v1/events/returns")
        doubled = 5 * sum(award["rule_id"] in DOUBLING for award in bought.answer["awards"])
        assert_every_promise(steps, more={"points": doubled, "pending": doubled}, only_in=(bought, balance))
        assert balance.answer["pending"] == bought.answer["points"]  # pending through the return window
        assert returned.answer["details"]["from_pending"] == -returned.answer["points"]
        if not doubled:
            assert returned.answer["points"] == -3  # as the README says beside it

        steps = walk(shell_block("Rewards and coupons", "# the catalog"), variables, copied)
        assert_every_promise(steps)
        used = keep(steps, "POST", r"/v1/coupons/\$CODE/use")
        cancelled = keep(steps, "POST", r"/v1/coupons/\$CODE/cancel")
        assert cancelled.answer["code"] != used.answer["code"]  # a coupon of its own: the used one cannot go back

        # the erasure example erases a member of its own, as the # -> under it says, and leaves the banner's
        # member to the examples after it
        copied["Z"] = lambda enrolled: enrolled["id"]  # "her id, from the answer above"
        block = shell_block("Members' personal data: export and erasure", "curl -s -X POST $API/v1/members ")
        steps = walk(block, variables, copied)
        assert_as_promised(keep(steps, "POST", r"/v1/members/\$Z/erase"))
        key = {"Authorization": f"Bearer {variables['KEY']}"}
        member = httpx.get(f"{variables['API']}/v1/members/{variables['M']}", headers=key)
        assert member.json()["status"] == "active"
