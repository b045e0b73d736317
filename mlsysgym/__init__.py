"""mlsysgym: a gym for ML-driven compilers and hardware design-space exploration."""

__version__ = "0.1.0"
