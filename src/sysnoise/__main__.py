import sys

from sysnoise.cli import main

sys.exit(main())
