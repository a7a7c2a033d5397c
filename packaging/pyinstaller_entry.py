"""PyInstaller entry point: the frozen ``holoscope`` binary is exactly the ``holoscope`` command
(``holoscope.cli:main``): no argument opens the desktop window, ``holoscope render ...`` works
headless."""

import sys

from holoscope.cli import main

if __name__ == "__main__":
    sys.exit(main())
