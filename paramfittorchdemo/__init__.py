"""Fit the parameters of differential equation models and neural ODEs to time series with PyTorch and torchdiffeq."""
__version__ = "0.1.0"

from .solvers import ADAPTIVE_METHODS, FIXED_STEP_METHODS, SolverError, solver_options
from .models import *
from .hybrid import *
from .data import *
from .observations import *
from .plotting import *
from .callbacks import *
from .checkpoints import *
from .training import *
from .lm import FitWarning
from .fitting import *
from .estimation import *
from .discovery import *
from .many import *
