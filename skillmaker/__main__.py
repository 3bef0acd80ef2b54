"""``python -m skillmaker`` runs the command line."""

from skillmaker.cli import main

raise SystemExit(main())
