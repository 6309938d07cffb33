"""`python -m gray.gateway serve ...`: the gateway without the rest of the CLI."""

from gray.gateway.cli import gateway_app

if __name__ == "__main__":
    gateway_app(prog_name="gray gateway")
