"""The embedded local AWS: a moto server that awslab starts, reuses and stops (see manager.py),
with awslab's fidelity layer over it (patches/)."""
