"""``python -m condiff``: the full command line (``condiff.tools.cli``), the readers' commands and the maintainers'.

The one core module that imports ``condiff.tools``: it is the program's entry point, not a library module.
"""
from .tools.cli import main

if __name__ == "__main__":
    main()
