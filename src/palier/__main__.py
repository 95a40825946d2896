"""``python -m palier``: the same command line as ``palier``, for a virtualenv whose scripts are not on PATH."""

from palier.cli.main import app

app(prog_name="palier")
