"""`python -m bench [options]`: the benchmark without going through the `goldenhour` CLI."""

import sys

from goldenhour.bench.main import main

sys.exit(main(sys.argv[1:]))
