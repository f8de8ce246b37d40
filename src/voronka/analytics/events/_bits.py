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

# The rule of ``_table.bucket_order_events`` (an int64 array; ``engine.event_rule`` builds it): what a row's event
# value and time mean when the compiled pass makes the masks.
R_STRICT_ALL, R_FIRST_TOUCH, R_HAS_START, R_START, R_HAS_END, R_END, R_PRUNE_START, R_LIMIT_KIND, R_LIMIT = range(9)
R_LUT_LOW = 9  # the event value at lut[1]
R_SIZE = 10
KEEP = 1 << 30  # in the lookup table of event values: a row with this value can matter (step, exclusion, tracked)
