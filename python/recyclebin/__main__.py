"""``python -m recyclebin``: the same command line as ``recyclebin``."""

from recyclebin.cli import main

if __name__ == "__main__":
    main()
