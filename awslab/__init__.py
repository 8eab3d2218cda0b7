"""awslab: reproduce an AWS databases lab end to end, safely, on a local AWS or a real account."""

__version__ = "0.1.0"
