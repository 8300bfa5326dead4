"""agentkd's built-in environments (installed as the `agentkd_envs` package): factqa, mathcode, apiworld.

Each is written with agentkd's public API exactly as a user would write theirs; load one by name
(`agentkd collect --env factqa`, `load_environment("mathcode", tasks_per_split=50)`)."""
