"""Find every face and its 68 keypoints: `python predict.py input=<image|folder|glob|video>`.

The same as `fkp predict ...`; the code lives in fkp/cli/predict.py.
"""

from fkp.cli.predict import main

if __name__ == "__main__":
    main()
