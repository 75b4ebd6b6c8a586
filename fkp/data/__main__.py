"""`python -m fkp.data ...` is `fkp data ...` (fkp.cli.data)."""

if __name__ == "__main__":
    import sys

    from fkp.cli.data import main

    sys.exit(main())
