"""``python -m condiff``: the full command line, the reader commands and the maintainers' tools.

The one core module that imports ``condiff.tools``: it is the program's entry point, not a library module.
"""
from .tools.cli import main

if __name__ == "__main__":
    main()
