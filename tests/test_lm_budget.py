"Levenberg-Marquardt's budget counts accepted steps; rejected trials have their own limit; the message says whether the loss still fell."
import torch

from paramfittorchdemo.lm import MAX_ITER, SOLVES_PER_ITER, STATUSES, lm

f64 = dict(dtype=torch.float64)


def rosenbrock(theta):
    "Rosenbrock's valley as residuals (10 (b - a^2), 1 - a): a curved valley, where LM rejects many trial steps."
    a, b = theta[:, 0], theta[:, 1]
    r = torch.stack([10*(b - a*a), 1 - a], 1)
    J = torch.stack([torch.stack([-20*a, torch.full_like(a, 10.0)], 1), torch.stack([-torch.ones_like(a), torch.zeros_like(a)], 1)], 1)
    return r, J, torch.ones(len(a), dtype=torch.bool)


def test_max_iter_counts_accepted_steps_not_rejected_ones():
    res = lm(rosenbrock, torch.tensor([[-1.2, 1.0]], **f64), max_iter=6, xtol=1e-12, ftol=1e-16)
    assert STATUSES[res.status[0]] == "max_iter" and int(res.accepted[0]) == 6, res.message(0, 1e-12, 1e-16, 6)
    assert res.iterations == 6 + int(res.rejected[0])
    full = lm(rosenbrock, torch.tensor([[-1.2, 1.0]], **f64), max_iter=100, xtol=1e-12, ftol=1e-16)
    assert full.success[0] and torch.allclose(full.theta[0], torch.ones(2, **f64), atol=1e-8)
    assert int(full.rejected[0]) > 0  # the valley makes it reject some steps: they did not use up the budget


def test_the_message_says_whether_the_loss_was_still_falling():
    res = lm(rosenbrock, torch.tensor([[-1.2, 1.0]], **f64), max_iter=6, xtol=1e-12, ftol=1e-16)
    assert "while the loss was still falling" in res.message(0, 1e-12, 1e-16, 6) and "raise max_iter" in res.message(0, 1e-12, 1e-16, 6)

    res.recent_drop[0] = 1e-9  # as if the last accepted steps had lowered the loss by a billionth of itself
    assert "the loss had stopped falling" in res.message(0, 1e-12, 1e-16, 6) and "raise" not in res.message(0, 1e-12, 1e-16, 6)


def test_rejected_trials_stop_at_their_own_limit():
    "A residual that no step lowers: the damping grows, and the trial solves stop at SOLVES_PER_ITER * max_iter with a message saying so."
    def never(theta):
        r = (theta - 1).abs().sum(1, keepdim=True) + 1.0  # the linear model promises a drop that a kink at the start never delivers
        return r, torch.sign(theta - 1)[:, None, :] + 0*theta[:, None, :], torch.ones(len(theta), dtype=torch.bool)
    res = lm(never, torch.tensor([[1.0 + 1e-3]], **f64), max_iter=2, xtol=1e-300, ftol=1e-300)
    msg = res.message(0, 1e-300, 1e-300, 2)
    assert res.status[0] == MAX_ITER and res.solves_spent and res.iterations == SOLVES_PER_ITER*2, msg
    assert f"{SOLVES_PER_ITER*2} trial solves" in msg


def test_a_tight_phase_that_fails_where_the_loose_one_ended_goes_on_from_the_start():
    "Loose solves succeed everywhere, tight ones only below 2.5: the loose phase ends at the optimum 3, where no tight solve succeeds."
    from paramfittorchdemo.lm import FAILED, lm_phases

    def residuals(limit):
        def f(theta):
            r = torch.cat([theta - 3, 0.1*(theta - 3)], 1)
            J = torch.tensor([[1.0], [0.1]], **f64).expand(len(theta), 2, 1)
            return r, J, (theta[:, 0] < limit)
        return f
    res = lm_phases(residuals(2.5), residuals(100.0), torch.tensor([[0.0]], **f64), 50, 1e-10, 1e-14)
    assert res.status[0] != FAILED, res.message(0, 1e-10, 1e-14, 50)  # the start, solvable, is not lost
    assert 0 < float(res.theta[0, 0]) < 2.5 and float(res.cost[0]) < 9.09  # it went from the start towards the optimum, as far as it could
