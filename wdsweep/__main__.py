"""`python -m wdsweep`: see wdsweep.app."""
from wdsweep.app import main

if __name__ == "__main__":
    main()
