"""``python -m evozero``: the command line."""

from evozero._console import main

main()
