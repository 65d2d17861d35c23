"""Metric losses of the four papers: hand-computed values (plain-loop numpy references written
from the paper equations, independent of the vectorised implementations), finite gradients,
graph-connected zeros on batches without valid pairs, and a short training run on a problem
whose nuisance dimensions defeat raw KNN, so only a working loss reaches the accuracy floor."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from ferindex.nn.losses import (
    LOSSES,
    BatchHardTripletLoss,
    EMLFLoss,
    FiveTupleLoss,
    NMTupleClustersLoss,
    SGMLoss,
    make_loss,
)
from ferindex.nn.heads import TwoBranchHead
from ferindex.nn.losses.joint import JointLoss
from ferindex.nn.losses.nm_tuple import tuple_sets
from ferindex.nn.weighting import DynamicLossWeights

torch.set_num_threads(1)

ALL = {
    "sgm": lambda: SGMLoss(sigma=0.5, norm_weight=0.1),
    "emlf": lambda: EMLFLoss(eps=0.1),
    "triplet": lambda: BatchHardTripletLoss(margin=0.2),
    "nm_tuple": lambda: NMTupleClustersLoss(),
    "nm_tuple_adaptive": lambda: NMTupleClustersLoss(dim=16),
    "five_tuple": lambda: FiveTupleLoss(),
}
PAIR_LOSSES = ["emlf", "triplet", "nm_tuple", "nm_tuple_adaptive", "five_tuple"]


def _t(a, dtype=torch.float64):
    return torch.tensor(a, dtype=dtype)


# ---------------------------------------------------------------- (a) hand-computed values


def test_emlf_value_matches_paper_eqs_3_to_7():
    angles = np.deg2rad([0.0, 30.0, 100.0, 80.0, 180.0])
    x = np.stack([np.cos(angles), np.sin(angles)], 1) * 2.0  # norm 2: the loss must normalise
    y = [0, 0, 0, 1, 1]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    eps, terms = 0.1, []
    for i in range(5):
        p = [k for k in range(5) if k != i and y[k] == y[i]]
        n = [k for k in range(5) if y[k] != y[i]]
        if not p or not n:
            continue
        hard_n = [j for j in n if s[i, j] > min(s[i, k] for k in p) - eps]  # eq 3
        hard_p = [j for j in p if s[i, j] < max(s[i, k] for k in n) + eps]  # eq 4 (MS rule)
        if not hard_p or not hard_n:
            continue
        jp = math.log(sum(-s[i, j] + math.sqrt(s[i, j] ** 2 + 1) for j in hard_p))  # eq 5
        jn = math.log(sum(s[i, j] + math.sqrt(s[i, j] ** 2 + 1) for j in hard_n))  # eq 6
        terms.append(jp + jn)
    # The example must exercise the mining: anchor 0 drops the easy positive at 30 degrees and
    # the easy negative at 180 degrees.
    assert len(terms) >= 3
    expected = float(np.mean(terms))  # eq 7 over anchors with mined pairs
    got = EMLFLoss(eps=eps)(_t(x), torch.tensor(y)).item()
    assert got == pytest.approx(expected, rel=1e-9)


def test_batch_hard_triplet_value():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [3.0, 0.0], [2.0, 1.0]])
    y = [0, 0, 1, 1, 1]
    m, terms = 1.0, []
    for i in range(5):
        dp = [np.linalg.norm(x[i] - x[k]) for k in range(5) if k != i and y[k] == y[i]]
        dn = [np.linalg.norm(x[i] - x[k]) for k in range(5) if y[k] != y[i]]
        terms.append(max(0.0, m + max(dp) - min(dn)))
    got = BatchHardTripletLoss(margin=m)(_t(x), torch.tensor(y)).item()
    assert got == pytest.approx(float(np.mean(terms)), rel=1e-9)
    sq = BatchHardTripletLoss(margin=m, squared=True)(_t(x), torch.tensor(y)).item()
    assert sq != pytest.approx(got)


def _nm_tuple_reference(x, y, ids, T, half):
    """Algorithm 1 + eq 3 with loops; ids=None -> negatives are all other expressions."""
    n_pts, terms = len(y), []
    for i in range(n_pts):
        negs = [j for j in range(n_pts) if y[j] != y[i]]
        poss = [j for j in range(n_pts) if y[j] == y[i]]
        if ids is not None:
            id_negs = [j for j in negs if ids[j] == ids[i]]
            negs = id_negs or negs
            id_poss = [j for j in poss if j == i or ids[j] != ids[i]]
            poss = id_poss if len(id_poss) > 1 else poss
        if len(poss) < 2 or not negs:
            continue
        c0 = x[poss].mean(0)
        d0 = {j: float(((x[j] - c0) ** 2).sum()) for j in range(n_pts)}
        nearest = min(d0[j] for j in negs)
        kept = [j for j in poss if d0[j] <= nearest or j == i]  # the query always stays
        c = x[kept].mean(0)
        d = {j: float(((x[j] - c) ** 2).sum()) for j in range(n_pts)}
        pull = np.mean([max(0.0, d[j] - T + half) for j in kept])
        push = np.mean([max(0.0, T + half - d[j]) for j in negs])
        terms.append(pull + push)
    return float(np.mean(terms))


def test_nm_tuple_value_with_online_positive_mining():
    # Class 0's far member (2, 0) lies farther from c+ than the nearest negative (1.6, 0) and is
    # dropped by Algorithm 1 (except when it is the query), and so is class 1's (1.6, 0); the
    # loss uses the updated centres. Without the mining this example gives 3.98 instead of 1.48.
    x = np.array([[0.0, 0.0], [0.0, 0.4], [2.0, 0.0], [1.6, 0.0], [5.0, 5.0], [4.0, 6.0]])
    y = [0, 0, 0, 1, 1, 1]
    expected = _nm_tuple_reference(x, y, None, T=3.0, half=1.0)
    got = NMTupleClustersLoss(threshold=3.0, tau=2.0)(_t(x), torch.tensor(y)).item()
    assert expected == pytest.approx(1.4824691358, rel=1e-9)
    assert got == pytest.approx(expected, rel=1e-9)


def test_nm_tuple_identity_aware_negatives():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    ids = torch.tensor([0, 1, 0, 1, 2, 3])
    pos, neg = tuple_sets(y, ids)
    # Query 0 (person 0, expression 0): negatives = person 0's other expression only.
    assert neg[0].nonzero().flatten().tolist() == [2]
    # Positives = itself + same expression of another person.
    assert pos[0].nonzero().flatten().tolist() == [0, 1]
    # Person 2 shows only expression 2: fall back to every other-expression sample.
    assert neg[4].nonzero().flatten().tolist() == [0, 1, 2, 3]
    # Unknown identity (-1) also falls back.
    _, neg_unknown = tuple_sets(y, torch.tensor([-1, 1, -1, 1, 2, 3]))
    assert neg_unknown[0].nonzero().flatten().tolist() == [2, 3, 4, 5]

    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (6, 3))
    loss = NMTupleClustersLoss(threshold=1.0, tau=1.0)
    with_ids = loss(_t(x), y, ids=ids).item()
    assert with_ids == pytest.approx(_nm_tuple_reference(x, y.tolist(), ids.tolist(), 1.0, 0.5), rel=1e-9)
    assert with_ids != pytest.approx(loss(_t(x), y).item())


def test_nm_tuple_adaptive_threshold_starts_at_fixed_and_learns():
    rng = np.random.default_rng(4)
    z = _t(rng.normal(0, 1, (12, 4))).requires_grad_()
    y = torch.tensor([0, 1, 2] * 4)
    fixed = NMTupleClustersLoss(threshold=2.0, tau=2.0)(z, y)
    adaptive = NMTupleClustersLoss(dim=4, threshold=2.0, tau=2.0).double()
    value = adaptive(z, y)
    assert value.item() == pytest.approx(fixed.item(), rel=1e-9)  # eqs 4-5 initialised to T = b
    value.backward()
    grads = {n: p.grad for n, p in adaptive.named_parameters()}
    assert set(grads) == {"adaptive.metric", "adaptive.quad", "adaptive.cross", "adaptive.linear", "adaptive.bias"}
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())


def _five_tuple_reference(x, y, nuisances_and_margins):
    total = 0.0
    for nuis, m in nuisances_and_margins:
        terms = []
        for i in range(len(y)):
            dp = [((x[i] - x[k]) ** 2).sum() for k in range(len(y))
                  if k != i and y[k] == y[i] and (nuis is None or nuis[k] != nuis[i])]
            dn = [((x[i] - x[k]) ** 2).sum() for k in range(len(y))
                  if y[k] != y[i] and (nuis is None or nuis[k] == nuis[i])]
            if dp and dn:
                terms.append(max(0.0, m + max(dp) - min(dn)))
        total += float(np.mean(terms)) if terms else 0.0
    return total


def test_five_tuple_value_expression_identity_and_pose():
    x = np.array([[0.0, 0.0], [0.6, 0.1], [0.3, 0.5], [0.9, 0.4], [0.1, 0.9], [1.0, 1.0]])
    y = [0, 0, 1, 1, 0, 1]
    ids = [0, 1, 0, 1, 1, 0]
    poses = [0, 1, 1, 0, 0, 1]
    loss = FiveTupleLoss(margin_pose=0.3, margin_id=0.5)
    z, yt = _t(x), torch.tensor(y)
    # No ids, no poses: the squared batch-hard triplet.
    assert loss(z, yt).item() == pytest.approx(_five_tuple_reference(x, y, [(None, 0.3)]), rel=1e-9)
    assert loss(z, yt).item() == pytest.approx(BatchHardTripletLoss(0.3, squared=True)(z, yt).item(), rel=1e-9)
    # ids: expression triplet + identity-invariant triplet (eq 5).
    got = loss(z, yt, ids=torch.tensor(ids)).item()
    assert got == pytest.approx(_five_tuple_reference(x, y, [(None, 0.3), (ids, 0.5)]), rel=1e-9)
    # ids + poses: pose-based (eq 4) + identity-based (eq 5) triplets, eq 6.
    got = loss(z, yt, ids=torch.tensor(ids), poses=torch.tensor(poses)).item()
    assert got == pytest.approx(_five_tuple_reference(x, y, [(poses, 0.3), (ids, 0.5)]), rel=1e-9)


def test_sgm_value_matches_paper_eqs_1_to_4():
    x = np.array([[0.0, 0.0], [0.5, 0.2], [1.0, 1.0], [1.2, 0.6], [-0.4, 1.1]])
    y = [0, 0, 1, 1, 1]
    sigma, nw = 0.5, 0.1

    def reference(target):
        mus = [x[[i for i in range(5) if y[i] == j]].mean(0) for j in (0, 1)]
        prior = [y.count(0) / 5, y.count(1) / 5]
        rep = []
        for i in range(5):
            lik = [prior[j] * math.exp(-((x[i] - mus[j]) ** 2).sum() / (2 * sigma**2)) for j in (0, 1)]
            post = [v / sum(lik) for v in lik]  # eq 1 with the Gaussians of eq 3
            rep.append(sum((post[j] - target[i][j]) ** 2 for j in (0, 1)))  # eq 4
        return float(np.mean(rep)) + nw * float(np.linalg.norm(x, axis=1).mean())

    loss = SGMLoss(sigma=sigma, norm_weight=nw)
    onehot = [[1.0, 0.0] if v == 0 else [0.0, 1.0] for v in y]
    assert loss(_t(x), torch.tensor(y)).item() == pytest.approx(reference(onehot), rel=1e-9)
    votes = [[0.8, 0.2], [0.6, 0.4], [0.1, 0.9], [0.3, 0.7], [0.0, 1.0]]
    got = loss(_t(x), torch.tensor(y), target=_t(votes)).item()
    assert got == pytest.approx(reference(votes), rel=1e-9)


# ---------------------------------------------------------------- (b) finite gradients


@pytest.mark.parametrize("name", sorted(ALL))
def test_finite_gradients_on_random_input(name):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 16, generator=g)
    z[1] = z[0]  # duplicate points: the sqrt/cdist at distance 0 must not give NaN
    z.requires_grad_()
    y = torch.randint(0, 4, (32,), generator=g)
    y[1] = y[0]
    ids = torch.randint(0, 5, (32,), generator=g)
    loss = ALL[name]()
    value = loss(z, y, ids=ids)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    if name == "five_tuple":
        z.grad = None
        loss(z, y, ids=ids, poses=torch.randint(0, 3, (32,), generator=g)).backward()
        assert torch.isfinite(z.grad).all()


# ---------------------------------------------------------------- (c) no valid pairs


@pytest.mark.parametrize("name", sorted(set(ALL) - {"sgm"}))
def test_single_class_batch_gives_connected_zero(name):
    z = torch.randn(8, 16, requires_grad=True)
    value = ALL[name]()(z, torch.zeros(8, dtype=torch.long), ids=torch.arange(8))
    assert value.item() == 0.0 and value.grad_fn is not None
    value.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_sgm_single_class_batch_keeps_the_norm_regulariser():
    """Alg. 1 applies the mean-norm regulariser to every batch; a one-class batch has no
    posterior to match, but must still be pulled towards the origin."""
    z = torch.randn(8, 16, requires_grad=True)
    value = SGMLoss(sigma=0.5, norm_weight=0.1)(z, torch.zeros(8, dtype=torch.long))
    assert value.item() == pytest.approx(0.1 * z.detach().norm(dim=1).mean().item())
    value.backward()
    assert (z.grad * z).sum() > 0  # the gradient points away from the origin: descent shrinks z


@pytest.mark.parametrize("name", PAIR_LOSSES)
def test_all_distinct_classes_gives_connected_zero(name):
    z = torch.randn(6, 16, requires_grad=True)
    value = ALL[name]()(z, torch.arange(6), ids=torch.zeros(6, dtype=torch.long))
    assert value.item() == 0.0 and value.grad_fn is not None
    value.backward()
    assert torch.isfinite(z.grad).all()


# ---------------------------------------------------------------- (d) training on blobs


def _blobs(n, rng, n_ids=8, n_classes=4, dim=20):
    """Class signal = 2.0 on one of the first 4 dims (noise 0.5); the other 16 dims carry a
    per-identity offset plus per-sample noise of std 2, which swamps Euclidean KNN on raw input."""
    layout = np.random.default_rng(0)
    means = np.zeros((n_classes, dim))
    means[np.arange(n_classes), np.arange(n_classes)] = 2.0
    id_offset = np.zeros((n_ids, dim))
    id_offset[:, n_classes:] = layout.normal(0, 2.0, (n_ids, dim - n_classes))
    y = rng.integers(0, n_classes, n)
    ids = rng.integers(0, n_ids, n)
    x = means[y] + id_offset[ids] + rng.normal(0, 0.5, (n, dim))
    x[:, n_classes:] += rng.normal(0, 2.0, (n, dim - n_classes))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y), torch.tensor(ids)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(1)
    return _blobs(2000, rng), _blobs(500, rng)


def _knn_accuracy(train, test, embed=lambda x: x):
    (xtr, ytr, _), (xte, yte, _) = train, test
    knn = KNeighborsClassifier(n_neighbors=5).fit(embed(xtr).numpy(), ytr.numpy())
    return knn.score(embed(xte).numpy(), yte.numpy())


def test_blobs_defeat_raw_knn(blobs):
    """Control for the training test: without a learned metric KNN is far below the floor."""
    assert _knn_accuracy(*blobs) < 0.7


@pytest.mark.parametrize("name", sorted(ALL))
def test_training_separates_blobs(name, blobs):
    train, test = blobs
    x, y, ids = train
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    loss = ALL[name]()
    opt = torch.optim.Adam([*net.parameters(), *loss.parameters()], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(x), (64,), generator=g)
        value = loss(net(x[idx]), y[idx], ids=ids[idx])
        opt.zero_grad()
        value.backward()
        opt.step()
    with torch.no_grad():
        assert _knn_accuracy(train, test, net) >= 0.95


# ---------------------------------------------------------------- registry and weighting


def test_registry_builds_every_loss():
    assert set(LOSSES) == {"sgm", "emlf", "triplet", "nm_tuple", "five_tuple"}
    for name, cls in LOSSES.items():
        assert isinstance(make_loss(name), cls)
    assert make_loss("triplet", margin=0.7).margin == 0.7
    with pytest.raises(ValueError, match="unknown metric loss 'arcface'"):
        make_loss("arcface")


def test_dynamic_weights_paper_eq_8():
    w = DynamicLossWeights(["ce", "metric"], k=2.0, temperature=2.0, window=5)
    assert w.weights() == {"ce": 1.0, "metric": 1.0}
    ce = [2.0] * 5 + [1.0] * 5  # 5-batch means 2.0 then 1.0 -> rate 0.5
    metric = [1.0, 3.0, 1.0, 3.0, 2.0] + [4.0, 0.0, 2.0, 2.0, 2.0]  # means 2.0 and 2.0 -> 1.0
    for i in range(10):
        assert w.weights() == {"ce": 1.0, "metric": 1.0}  # equal until 10 batches are seen
        w.update({"ce": ce[i], "metric": metric[i]})
    e_ce, e_m = math.exp(0.5 / 2), math.exp(1.0 / 2)
    got = w.weights()
    assert got["ce"] == pytest.approx(2 * e_ce / (e_ce + e_m))
    assert got["metric"] == pytest.approx(2 * e_m / (e_ce + e_m))
    assert got["metric"] > got["ce"]  # the loss that stopped falling gets more weight
    # The windows slide: one more batch makes them ce [2,2,2,2,1] / [1,1,1,1,1] and
    # metric [3,1,3,2,4] / [0,2,2,2,2].
    w.update({"ce": 1.0, "metric": 2.0})
    rate_ce, rate_m = 1.0 / 1.8, 1.6 / 2.6
    e_ce, e_m = math.exp(rate_ce / 2), math.exp(rate_m / 2)
    assert w.weights()["ce"] == pytest.approx(2 * e_ce / (e_ce + e_m))
    with pytest.raises(KeyError, match="metric"):
        w.update({"ce": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        w.update({"ce": float("nan"), "metric": 1.0})


class _Spy(torch.nn.Module):
    """A metric loss that records the target it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def forward(self, z, y, target=None, ids=None):
        self.seen.append(target)
        return z.pow(2).mean()


def test_joint_loss_hard_targets_reach_no_term():
    """soft_targets=False means hard labels everywhere: the metric loss must not see votes."""
    z, logits, y = torch.randn(6, 4), torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    votes = torch.softmax(torch.randn(6, 3), 1)
    for soft in (False, True):
        spy = _Spy()
        JointLoss({"spy": spy}, soft_targets=soft)(z, logits, y, votes)
        assert (spy.seen[0] is votes) == soft


def test_joint_loss_dynamic_weights_cover_every_term_and_resume():
    """Paper 004 eq 8 weighs *all* terms (CE, metric, auxiliary head), the weights sum to K, the
    total is exactly their weighted sum, and the history survives a state_dict round trip."""
    torch.manual_seed(0)
    aux = {"aux": torch.nn.Linear(4, 3)}

    def make():
        return JointLoss({"sgm": SGMLoss()}, {"sgm": 0.3}, aux=aux,
                         dynamic=DynamicLossWeights(["ce", "sgm", "aux"], k=2.0))

    joint = make().train()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for step in range(12):
        z = torch.randn(8, 4) * (1 + step)  # the losses change, so the rates differ
        total, terms = joint(z, torch.randn(8, 3), y, aux_labels={"aux": y.flip(0)})
    lam = joint.current_weights()
    assert set(lam) == {"ce", "sgm", "aux"} and sum(lam.values()) == pytest.approx(2.0)
    assert len(set(round(v, 6) for v in lam.values())) > 1  # eq 8 moved them off K / n
    z, logits = torch.randn(8, 4), torch.randn(8, 3)
    joint.eval()  # evaluation records nothing
    total, terms = joint(z, logits, y, aux_labels={"aux": y})
    assert total.item() == pytest.approx(sum(lam[k] * terms[k].item() for k in lam), rel=1e-5)
    resumed = make()
    resumed.load_state_dict(joint.state_dict())
    assert resumed.current_weights() == pytest.approx(lam)


def test_two_branch_head_feeds_classifier_features_to_the_metric_branch():
    """Eq 13: the connecting layer joins the EC branch (FC_2) into the ML branch; the softmax
    reads the EC branch only."""
    torch.manual_seed(0)
    head = TwoBranchHead(10, 4, 3, hidden=8)
    f = torch.randn(5, 10)
    z0, logits0 = head(f)
    with torch.no_grad():
        head.ml[0].weight.add_(1.0)  # change the ML branch: the logits must not move
    z1, logits1 = head(f)
    assert torch.equal(logits0, logits1) and not torch.allclose(z0, z1)
    with torch.no_grad():
        head.ec[0].weight.add_(1.0)  # change the EC branch: both move
    z2, logits2 = head(f)
    assert not torch.allclose(z1, z2) and not torch.allclose(logits1, logits2)


# ---------------------------------------------------------------- distillation


def test_distillation_value_matches_hinton_kl_and_park_distances():
    """T^2 KL of the softened posteriors (numpy reference from the equations) plus the Huber
    loss between mean-normalised pairwise distances of student and teacher embeddings."""
    from ferindex.nn.losses.distill import DistillationLoss

    rng = np.random.default_rng(0)
    logits, z = rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    teacher_p, teacher_z = rng.dirichlet(np.ones(4), 5), rng.normal(size=(5, 6))  # another width
    t = 3.0
    q = teacher_p ** (1 / t)
    q /= q.sum(1, keepdims=True)
    s = np.exp(logits / t)
    s /= s.sum(1, keepdims=True)
    kl = t * t * np.mean([sum(q[i, c] * math.log(q[i, c] / s[i, c]) for c in range(4)) for i in range(5)])

    def psi(e):
        d = np.linalg.norm(e[:, None] - e[None], axis=2)
        pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
        mean = np.mean([d[i, j] for i, j in pairs])
        return np.array([d[i, j] / mean for i, j in pairs])

    diff = np.abs(psi(z) - psi(teacher_z))
    huber = np.mean(np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5))
    loss = DistillationLoss(temperature=t, relation_weight=0.7)
    got = loss(_t(z), _t(logits), _t(teacher_p), _t(teacher_z))
    assert got.item() == pytest.approx(kl + 0.7 * huber, rel=1e-6)
    plain = DistillationLoss(temperature=t, relation_weight=0.0)(_t(z), _t(logits), _t(teacher_p), _t(teacher_z))
    assert plain.item() == pytest.approx(kl, rel=1e-6)


def test_distillation_is_zero_when_the_student_copies_the_teacher_up_to_scale():
    """The student matches when its logits are the teacher's log-probabilities and its embedding
    space is the teacher's rescaled; any other student pays, with finite gradients."""
    from ferindex.nn.losses.distill import DistillationLoss

    torch.manual_seed(0)
    p, tz = torch.softmax(torch.randn(8, 5, dtype=torch.float64), 1), torch.randn(8, 4, dtype=torch.float64)
    loss = DistillationLoss(temperature=2.0, relation_weight=1.0)
    assert loss(tz * 5.0, torch.log(p) + 3.0, p, tz).item() == pytest.approx(0.0, abs=1e-9)
    z = torch.randn(8, 4, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    out = loss(z, logits, p, tz)
    out.backward()
    assert out.item() > 0.01 and torch.isfinite(z.grad).all() and torch.isfinite(logits.grad).all()
    assert z.grad.abs().sum() > 0 and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0.0)


def test_joint_loss_distills_only_with_the_teachers_outputs():
    """A distilling JointLoss adds the "distill" term at its weight, and refuses a batch without
    the teacher's outputs rather than silently training without them."""
    from ferindex.nn.losses.distill import DistillationLoss

    torch.manual_seed(0)
    z, logits, y = torch.randn(6, 4), torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    teacher = (torch.softmax(torch.randn(6, 3), 1), torch.randn(6, 8))
    joint = JointLoss({"sgm": SGMLoss()}, {"distill": 0.5}, distill=DistillationLoss())
    assert joint.names == ["ce", "sgm", "distill"]
    total, terms = joint(z, logits, y, teacher=teacher)
    assert terms["distill"].item() > 0
    assert total.item() == pytest.approx(terms["ce"].item() + terms["sgm"].item() + 0.5 * terms["distill"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="teacher"):
        joint(z, logits, y)
