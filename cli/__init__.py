"""The `gray` command line: thin Typer sub-apps over `gray.controller`."""
