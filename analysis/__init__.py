"""The analysis stage (sweep folders -> tables, charts, report); filled by the analysis issue."""
