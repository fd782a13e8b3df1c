"""python -m tokenomy"""

from tokenomy.cli import run

run()
