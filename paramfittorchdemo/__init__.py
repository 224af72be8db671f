"""Fit the parameters of differential equation models and neural ODEs to time series with PyTorch and torchdiffeq."""
__version__ = "0.1.0"

from .models import *
from .data import *
from .plotting import *
from .training import *
from .observations import *
from .estimation import *
from .discovery import *
from .lm import FitWarning
from .solvers import SolverError
