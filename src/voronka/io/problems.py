"""Row problems: what is wrong, where (file, row, column, value) and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voronka.errors import InputError


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad value or row. ``row`` counts file lines from 1 (the header is row 1 in a CSV with a header)."""

    file: str
    row: int | None
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        shown = "" if self.value is None else f" value {self.value!r}:"
        return f"{where}:{shown} {self.reason}"


class ImportRefusedError(InputError):
    """The import found bad rows and wrote nothing."""

    def __init__(self, problems: Sequence[Problem], hint: str = "") -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  … and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        fix = (
            hint
            or "Fix these rows, or re-run with --skip-bad-rows to import the rest and write the bad rows "
            "to a reject file."
        )
        super().__init__(f"{len(self.problems)} problem(s); nothing was imported.\n{shown}{more}\n{fix}")
