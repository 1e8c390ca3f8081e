"""`python -m crm` runs the same CLI as the `crm` console script."""

from crm.cli import app

app()
