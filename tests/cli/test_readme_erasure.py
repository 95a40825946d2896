"""The README's erasure example, run as written after ``make demo`` (see ``test_readme_walkthrough``): it erases
a member of its own, as the ``# ->`` under it says, and leaves the banner's member for the examples after it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli.test_readme_walkthrough import assert_as_promised, demo, keep, shell_block, walk


def test_the_readme_erasure_runs_as_written_and_leaves_the_banners_member(tmp_path: Path) -> None:
    with demo(tmp_path) as banner:
        copied = {name: (lambda _answer, value=value: value) for name, value in banner.items()}
        copied["Z"] = lambda enrolled: enrolled["id"]  # "her id, from the answer above"
        variables = dict(banner) | {"ADMIN_KEY": banner["KEY"]}  # as the walk-through's first lines set them
        block = shell_block("Members' personal data: export and erasure", "curl -s -X POST $API/v1/members ")
        steps = walk(block, variables, copied)
        erased = keep(steps, "POST", r"/v1/members/\$Z/erase")
        assert_as_promised(erased)
        member = httpx.get(
            f"{banner['API']}/v1/members/{banner['M']}", headers={"Authorization": f"Bearer {banner['KEY']}"}
        )
        assert member.json()["status"] == "active"  # the examples after it still have their member
