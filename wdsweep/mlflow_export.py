"""`python -m wdsweep.mlflow_export FOLDER...`: export finished jobs to MLflow later.

The command's public path, kept; the code lives in wdsweep.tracking.mlflow_export (importing this
module gives that one).
"""
import sys

from wdsweep.tracking import mlflow_export as _mlflow_export

if __name__ == "__main__":
    sys.exit(_mlflow_export.main())
sys.modules[__name__] = _mlflow_export
