"""The validation suite of r2d2formula: SBC, coverage and agreement (see README.md)."""
