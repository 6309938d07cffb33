import typer
from typer.testing import CliRunner
def test_x(demo_registry):
    from gray.cli.output import console
    app = typer.Typer()
    @app.command()
    def a():
        print("W", console.size, console.options.max_width, console.options.size, console.height, console.options.height)
    @app.command()
    def b(): pass
    print(CliRunner().invoke(app, ["a"]).stdout)
