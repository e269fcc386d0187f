"""Building blocks the raw suites share: the rules every delivered row must read by (no Dagster here).

The collect stage keeps what it could not read beside each raw row (orchestration.lib.raw_tables): the whole line in
`_unreadable_line` when it could not be split into the header's fields, a value in `_unreadable_<column>` when
it is not of the column's type. These rules turn that into expectations with a description people can act on.
"""

from __future__ import annotations

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

UNREADABLE_LINE = "_unreadable_line"


def unreadable(column: str) -> str:
    return f"_unreadable_{column}"


def every_line_reads() -> gxe.Expectation:
    return gxe.ExpectColumnValuesToBeNull(
        column=UNREADABLE_LINE,
        description="every line is UTF-8 text with as many fields as the header",
    )


def reads_as(column: str, what: str) -> gxe.Expectation:
    """`column` holds `what` (a date, a number, ...) wherever it has a value."""
    return gxe.ExpectColumnValuesToBeNull(column=unreadable(column), description=f"{column} is {what}")


def present(column: str, sentence: str, typed: bool = False) -> gxe.Expectation:
    """`column` has a value in every row that could be read (an unreadable line or value is its own rule)."""
    condition = Column(UNREADABLE_LINE).is_null()
    if typed:
        condition = condition & Column(unreadable(column)).is_null()
    return gxe.ExpectColumnValuesToNotBeNull(column=column, row_condition=condition, description=sentence)


def known(helper: str, sentence: str) -> gxe.Expectation:
    """Referential integrity: the gate fills `helper` with the value when it refers to nothing known."""
    return gxe.ExpectColumnValuesToBeNull(column=helper, description=sentence)
