"""``python -m perdure.cli``."""

from perdure.cli.root import main

main()
