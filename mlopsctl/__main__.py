from mlopsctl.cli import main

raise SystemExit(main())
