"""The pacing node: a Faust worker that folds stat events into per-target state and publishes decisions.

Start at :mod:`streams.node.app` (the app, its agent, table and the node's loop). It uses the shared runtime
(:mod:`streams.runtime`) and the pure engine (:mod:`streams.engine`); every use of Faust's internals
is in :mod:`streams.node.faust_compat`.
"""
