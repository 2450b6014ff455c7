"""``python -m railguard`` runs the command line."""

from railguard.cli import main

raise SystemExit(main())
