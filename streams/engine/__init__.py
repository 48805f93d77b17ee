"""The pacing engine: pure functions from a target's observed state to a pacing decision.

Nothing in this package touches Kafka, clocks or I/O; the pacing nodes (streams.node.app)
and the simulator (streams.simulation) drive it with the same calls, so what the simulator
measures is what runs. Modules: ``state`` (folding stat events), ``rates`` (rolling rates and
priors), ``queueing`` and ``horizon`` (the maths; its arithmetic in the compiled ``_kernels``, or
where they do not build in ``reference``, the same functions as straightforward Python, on
``distributions``: ``kernels`` picks), ``progressive``, ``predictive`` and ``busy_factor`` (the
algorithms), ``decide`` (choice, edge cases, the decision).
"""

from streams.engine.decide import PacingDecision, choose_algorithm, decide
from streams.engine.rates import Observation, observe
from streams.engine.settings import ALGORITHMS, PacingSettings
from streams.engine.state import TargetState

__all__ = [
    "ALGORITHMS",
    "Observation",
    "PacingDecision",
    "PacingSettings",
    "TargetState",
    "choose_algorithm",
    "decide",
    "observe",
]
