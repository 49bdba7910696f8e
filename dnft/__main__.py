import sys

from dnft.cli import main

sys.exit(main())
