"""Experiments as plans of jobs: the same jobs `agentkd pipeline` runs, then one table from what they wrote.

`agentkd bench icd` is `IcdBench` (agentkd.bench.icd) with its settings (agentkd.bench.settings); the settings
module loads light, so the command line reads its defaults while it parses."""
