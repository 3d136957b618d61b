"""`python -m tfsoftmax`: the same entry point as the console script (used by the sweep launcher)."""

from tfsoftmax.cli import main_entry

main_entry()
