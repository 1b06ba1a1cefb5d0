import sys

from bench.soak.run import cli

sys.exit(cli())
