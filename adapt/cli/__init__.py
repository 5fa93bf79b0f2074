"""The `adapt` command line: a thin shell over the Python API.

Heavy packages (torch, lightning, peft, timm) are imported inside the commands that need them, so
`adapt --help` and `adapt embodiment ...` answer in a fraction of a second. Bad input ends in one
message naming the file and field, and exit status 2.
"""

from adapt.cli import evaluation, plan, serving, training  # noqa: F401  (register the top-level commands)
from adapt.cli.common import app
from adapt.cli.data import data_app
from adapt.cli.embodiment import embodiment_app

app.add_typer(embodiment_app, name="embodiment")
app.add_typer(data_app, name="data")

__all__ = ["app"]
