"""Run VLA Studio from a source checkout: `python main.py [args]` is `vla-studio [args]`."""
from vla_studio.cli import main
raise SystemExit(main())
