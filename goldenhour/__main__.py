"""`python -m goldenhour`: the same command line as `goldenhour`."""

from goldenhour.cli import main

raise SystemExit(main())
