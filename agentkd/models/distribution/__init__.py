"""The local models agentkd knows by alias, and how they are installed."""
