"""`python -m demo` (the README's `bin/demo`): the whole flow on an embedded local broker."""

import sys

from demo.run import main

sys.exit(main())
