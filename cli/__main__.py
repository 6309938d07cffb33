"""`python -m gray.cli`: the same as the `gray` command."""

from gray.cli.app import main

main()
