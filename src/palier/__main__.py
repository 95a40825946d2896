"""``python -m palier``: the same command line as ``palier``, for a virtualenv whose scripts are not on PATH."""

from palier.cli.main import app

if __name__ == "__main__":  # importing it (a walk of the package's modules) runs nothing
    app(prog_name="palier")
