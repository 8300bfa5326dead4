"""The agentkd version, at the bottom of the import graph so any module may record it."""

__version__ = "0.1.0"
