import sys

from zdg.cli import main

sys.exit(main())
