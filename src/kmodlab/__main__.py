import sys

from kmodlab.tools import main

sys.exit(main())
