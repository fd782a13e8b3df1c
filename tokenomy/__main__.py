"""python -m tokenomy"""

from tokenomy.cli import main

main()
