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

# `from paramfittorchdemo import *` binds the public API (listed in nbs/index.ipynb, pinned by tests/test_api.py): the names each
# star-imported module lists in its own __all__, and the names imported one by one above; not the submodules themselves (`data`,
# `models`, ...), which stay reachable as paramfittorchdemo.data etc. Helpers shared between modules are exported with `#| exporti`,
# so that they are in no __all__.
import sys as _sys
__all__ = ["__version__", "ADAPTIVE_METHODS", "FIXED_STEP_METHODS", "SolverError", "solver_options", "FitWarning"]
for _name in ("models", "hybrid", "data", "observations", "plotting", "callbacks", "checkpoints", "training", "fitting", "estimation",
              "discovery", "many"):
    __all__ += [n for n in _sys.modules[f"{__name__}.{_name}"].__all__ if n not in __all__]
del _name, _sys
