"""`python -m demo`: until the processor and gateway land, the main job is the smoke run."""

import sys

from demo.smoke import main

sys.exit(main())
