"""The pacing engine: pure functions from a target's observed state to a pacing decision.

Nothing in this package touches Kafka, clocks or I/O; the pacing nodes (streams.pacing_node)
and the simulator drive it with the same calls, so what the simulator measures is what runs.
"""

from streams.engine.decide import PacingDecision, PacingSettings, decide
from streams.engine.state import TargetState

__all__ = ["PacingDecision", "PacingSettings", "TargetState", "decide"]
