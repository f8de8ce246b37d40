"""The row mask's bits and the kernel's codes, shared by the SQL that builds masks and the kernel that reads them."""

STEP_BITS = 0xFFFF  # bits 0..15: the steps a row matches
IN_RANGE = 1 << 16  # the row lies in the date range: it may start an attempt
FIRST_TOUCH = 1 << 17  # a first-touch row: the entity's earliest breakdown code, not an event
TRACKED = 1 << 18  # every event row (strict mode: a row with only this bit breaks attempts)
EXCL_SHIFT = 20  # bits 20..27: the exclusion steps a row matches
EXCL_BITS = 0xFF << EXCL_SHIFT
MISSING = -(2**63)  # a step not reached
ORDERED, STRICT, ANY = 0, 1, 2
FIRST, LAST, AT_STEP = 0, 1, 2
