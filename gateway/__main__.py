"""`python -m gray.gateway serve ...`: the gateway without the rest of the CLI."""

from gray.cli.gateway import gateway_app

if __name__ == "__main__":
    gateway_app(prog_name="gray gateway")
