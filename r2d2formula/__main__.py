"""``python -m r2d2formula``: the command line."""

from r2d2formula.cli import main

raise SystemExit(main())
