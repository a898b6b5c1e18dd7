"""The Socrata source: a sodapy-based resource with retries and one clear sentence per failure."""

from delitos_platform.socrata.resource import SocrataError, SocrataResource

__all__ = ["SocrataError", "SocrataResource"]
