from vla_studio.cli import main

raise SystemExit(main())
