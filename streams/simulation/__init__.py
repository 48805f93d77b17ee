"""A deterministic contact-centre simulator that scores the pacing engine (``pacing simulate``).

``contact_centre`` is the discrete-event model, ``policies`` who decides the offers (the engine
exactly as a pacing node drives it, or a baseline), ``benchmark`` the scenario matrix and its
table, ``command`` the CLI. See streams/engine/PACING.md for what the benchmark shows.
"""

from streams.simulation.contact_centre import simulate
from streams.simulation.policies import ConstantRatePolicy, EnginePolicy, ReadyPolicy
from streams.simulation.scenario import Scenario, SimulationResult

__all__ = ["ConstantRatePolicy", "EnginePolicy", "ReadyPolicy", "Scenario", "SimulationResult", "simulate"]
