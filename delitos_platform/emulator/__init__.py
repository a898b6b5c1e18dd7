"""An offline emulator of the Socrata SODA API serving dataset ``4v6r-wu98`` (and, asked, every configured one).

Source of the shipped snapshot: Policía Nacional de Colombia, datos.gov.co dataset 4v6r-wu98, CC BY-SA 4.0.
"""

from delitos_platform.emulator.faults import Faults
from delitos_platform.emulator.server import DEFAULT_SNAPSHOT, EmulatorServer
from delitos_platform.emulator.snapshot import Dataset

__all__ = ["DEFAULT_SNAPSHOT", "Dataset", "EmulatorServer", "Faults"]
