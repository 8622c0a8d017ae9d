"""`python -m tfrs_negatives compare ...`: the comparison command (see `experiments.compare`)."""

from tfrs_negatives.experiments.compare import main_exit

if __name__ == "__main__":
    main_exit()
