import matplotlib
matplotlib.use("Agg")
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_close_figures():
    "Every test starts from the same global seed and leaves no figure open."
    torch.manual_seed(0)
    yield
    import matplotlib.pyplot as plt
    plt.close("all")
