"""MMPareto's rule written out plainly in float64, as its official loop computes it: an oracle for tests of
the vectorised ``geomreg.pareto`` (cosine on the concatenation, the two-vector min-norm solver with its edge
cases, per-tensor norm restoration, × gamma)."""
import torch


def official_rule(g_task, g_other, gamma=1.5):
    a = [x.double() for x in g_task]
    b = [x.double() for x in g_other]
    v1 = torch.cat([x.flatten() for x in a])
    v2 = torch.cat([x.flatten() for x in b])
    v11, v22, v12 = (v1 @ v1).item(), (v2 @ v2).item(), (v1 @ v2).item()
    cos = v12 / (v11 * v22) ** 0.5 if v11 > 0 and v22 > 0 else 0.0
    if cos > 0:
        w1 = 0.5
    elif v12 >= v11:
        w1 = 0.999
    elif v12 >= v22:
        w1 = 0.001
    else:
        w1 = (v22 - v12) / (v11 + v22 - 2 * v12)
    out = []
    for x, y in zip(a, b):
        new = 2 * (w1 * x + (1 - w1) * y)
        r = ((x + y).norm() / new.norm()).item() if new.norm() > 0 else 1.0
        out.append(gamma * max(r, 1.0) * new)
    return out, w1, cos
