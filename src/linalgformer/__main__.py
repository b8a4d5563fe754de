from linalgformer.cli import main

raise SystemExit(main())
