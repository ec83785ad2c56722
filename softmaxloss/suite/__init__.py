"""Helpers of the asv suite (results, gate, detection study); not imported by the package."""
