"""`python -m bench.faults` is the same as `python -m bench faults`."""

import sys

from bench.faults import main

sys.exit(main(sys.argv[1:]))
