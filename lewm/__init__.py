"""The LeWM model: architecture, SIGReg, training, model folders, the stream, the probes.

Importing this package imports nothing heavy; modules that need torch import it themselves,
so `lewm --help`, the config and the numpy stream stay torch-free.
"""
