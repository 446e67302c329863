"""Local stand-in for the EcoFlow cloud: signed Open API, simulated devices, scenarios.

Used by the tests, by ``scripts/develop`` and by anyone without an EcoFlow
account. See ``python -m simulator --help``.
"""
