"""`python -m searchkit.cli`, as `python -m searchkit`."""

from . import main

main()
