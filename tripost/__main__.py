from tripost.cli import main

raise SystemExit(main())
