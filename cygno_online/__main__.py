from cygno_online.cli import main

raise SystemExit(main())
