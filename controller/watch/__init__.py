"""`gray watch`: start a rollout when the plan's candidate alias moves to a new version.

`decision.py` says, from the registry and the journals, whether the version the alias
names now should be rolled out (a pure function); `watcher.py` looks at an interval or
when nudged and starts the rollout through the ordinary start path; `signature.py`
verifies MLflow's signed registry webhooks; `listener.py` is the local HTTP endpoint
that receives them and nudges the watcher.
"""
