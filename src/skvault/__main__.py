from skvault.cli import main

raise SystemExit(main())
