"""``python -m processlens`` is the ``processlens`` command."""

from processlens.cli import main

main()
