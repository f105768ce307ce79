from __future__ import annotations

from services.admin import main

raise SystemExit(main())
