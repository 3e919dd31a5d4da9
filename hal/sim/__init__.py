"""Simulated hardware: a `Simulator` (the station's connectors, driven over a loopback
control socket, see scripts/simctl) and the drivers that face the firmware."""

from hal.sim.drivers import SimEvse, SimMeter, SimReader
from hal.sim.simulator import Simulator

__all__ = ["Simulator", "SimEvse", "SimMeter", "SimReader"]
