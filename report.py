"""One table and one plot of many runs: `python report.py <multirun folder or run folders>`.

The same as `fkp report ...`; the code lives in fkp/cli/report.py.
"""

from fkp.cli.report import main

if __name__ == "__main__":
    main()
