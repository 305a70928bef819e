import sys

from tsplab.cli import main

sys.exit(main())
