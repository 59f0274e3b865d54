"""``python -m farmtools`` is the same as the ``farmtools`` command."""

from farmtools.cli import main

main()
