from quantnas.cli import main

raise SystemExit(main())
