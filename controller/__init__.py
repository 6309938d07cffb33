"""Everything in gray that decides: plans, registry, gates, routers, metrics, the loop.

Nothing here prints or exits; the CLI maps results and errors to output and exit codes.
"""
