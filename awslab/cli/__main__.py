"""``python -m awslab.cli``: the same as the ``awslab`` console script."""

from awslab.cli import main

main()
