"""`python -m medforget.cli`."""

from medforget.cli import main

main()
