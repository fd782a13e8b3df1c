"""python -m tokenomy"""

from tokenomy.console import run

run()
