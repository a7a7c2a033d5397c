import sys

from holoscope.cli import main

sys.exit(main())
