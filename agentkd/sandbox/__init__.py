"""The OS sandbox that runs model-written code: the host side, the isolation (bubblewrap), the worker."""
