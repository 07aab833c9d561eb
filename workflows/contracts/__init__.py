"""The messages of every workflow, one module per workflow plus `common`.

Each module holds that workflow's input, result, status, updates, signals, the messages
its activities exchange (stored in workflow history), and the typed references
(`WorkflowRef`, `UpdateRef`, `SignalRef`, `QueryRef`) the API calls it with. These are
the shapes of history: change them only on purpose (see docs/REPLAY.md). Repositories
and the API keep their own models; activities map rows to these.
"""
