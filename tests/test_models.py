"""The model substrate: encoders, fusion heads and the unimodal logits."""
import torch
from torch import nn

from benchmarks.models import ModelOutput, build_model
from benchmarks.models.encoders import ResNet18Encoder, SmallCNNEncoder
from benchmarks.models.fusion import ConcatFusion, SumFusion
from benchmarks.grid.config import ModelConfig


def test_concat_split_is_weight_blocks_with_shared_bias():
    torch.manual_seed(0)
    head = ConcatFusion({"audio": 3, "visual": 2}, num_classes=4)
    emb = {"audio": torch.randn(5, 3), "visual": torch.randn(5, 2)}
    split = head.split(emb)
    w, b = head.fc.weight, head.fc.bias
    torch.testing.assert_close(split["audio"], emb["audio"] @ w[:, :3].T + b / 2)
    torch.testing.assert_close(split["visual"], emb["visual"] @ w[:, 3:].T + b / 2)
    torch.testing.assert_close(split["audio"] + split["visual"], head(emb))  # o = o_a + o_v


def test_sum_fusion_unimodal_logits_add_up_to_fused():
    head = SumFusion({"audio": 3, "visual": 3}, num_classes=4)
    emb = {"audio": torch.randn(5, 3), "visual": torch.randn(5, 3)}
    split = head.split(emb)
    torch.testing.assert_close(split["audio"] + split["visual"], head(emb))


def test_visual_frames_are_averaged_after_the_cnn():
    torch.manual_seed(0)
    enc = SmallCNNEncoder(in_channels=3, width=16).eval()
    a, b = torch.randn(2, 3, 12, 12), torch.randn(2, 3, 12, 12)
    both = enc(torch.stack([a, b], dim=1))  # (B, T=2, C, H, W)
    torch.testing.assert_close(both, (enc(a) + enc(b)) / 2)


def test_resnet18_audio_has_one_input_channel_and_512_outputs():
    enc = ResNet18Encoder(in_channels=1)
    assert enc.body[0].in_channels == 1
    assert enc(torch.randn(2, 1, 64, 48)).shape == (2, 512)
    assert ResNet18Encoder(in_channels=3)(torch.randn(2, 3, 3, 32, 32)).shape == (2, 512)


def test_forward_returns_typed_output_and_separate_heads_are_independent():
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8, unimodal_heads="separate"), {"audio": 1, "visual": 3}, 5)
    out = model({"audio": torch.randn(4, 1, 12, 12), "visual": torch.randn(4, 2, 3, 12, 12)})
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (4, 5) and set(out.unimodal_logits) == {"audio", "visual"}
    assert out.embeddings["audio"].shape == (4, 8)
    torch.testing.assert_close(out.unimodal_logits["audio"],
                               model.unimodal_heads.fc["audio"](out.embeddings["audio"]))
    head_ids = {id(p) for p in model.head_parameters()}
    enc_ids = {id(p) for m in model.modalities for p in model.encoder_parameters(m)}
    assert head_ids.isdisjoint(enc_ids) and head_ids | enc_ids == {id(p) for p in model.parameters()}


def test_builder_initialises_heads_and_encoders_like_the_originals():
    """OGM-GE/PMR/DGL apply weight_init to the whole model: Xavier-normal linear layers with zero bias
    (PyTorch's default would draw the bias from U(±1/sqrt(fan_in)) and the weight with std
    1/sqrt(3·fan_in)), Kaiming-normal (fan_out) convolutions, norm layers 1/0."""
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="resnet18", unimodal_heads="separate")
    model = build_model(cfg, {"audio": 1, "visual": 3}, 6)
    linears = [model.fusion.fc, *model.unimodal_heads.fc.values()]
    for fc in linears:
        assert torch.all(fc.bias == 0)
        fan_out, fan_in = fc.weight.shape
        xavier, default = (2 / (fan_in + fan_out)) ** 0.5, (3 * fan_in) ** -0.5
        assert abs(fc.weight.std().item() - xavier) < 0.1 * xavier < abs(xavier - default)
    conv = model.encoders["audio"].body[4][0].conv1  # layer1's first 3×3 conv, 64 → 64 channels
    kaiming = (2 / (64 * 9)) ** 0.5  # fan_out = 64 · 3 · 3
    assert abs(conv.weight.std().item() - kaiming) < 0.05 * kaiming
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)


def _pool_inputs():
    """ReLU'd activations rounded to 0.1: many exact ties (zeros and repeated values), odd sides."""
    g = torch.Generator().manual_seed(0)
    return torch.relu(torch.randn(6, 5, 9, 13, generator=g)).round(decimals=1)


def test_channels_last_max_pool_equals_max_pool_bit_for_bit():
    from benchmarks.models.encoders import MaxPool2x2

    x = _pool_inputs()
    grad_out = torch.randn(6, 5, 4, 6, generator=torch.Generator().manual_seed(1))
    results = []
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        leaf = x.clone().requires_grad_()
        y = pool(leaf)
        (grad,) = torch.autograd.grad(y, leaf, grad_out)
        with torch.no_grad():
            y_eval = pool(x)
        assert y.is_contiguous() and y_eval.is_contiguous()
        results.append((y, grad, y_eval))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_channels_last_max_pool_under_a_batched_vector_jacobian_product():
    """DAGR pulls two cotangents back at once (``is_grads_batched``): the pool's backward must batch."""
    from benchmarks.models.encoders import MaxPool2x2

    x = _pool_inputs()
    cotangents = torch.randn(2, 6, 5, 4, 6, generator=torch.Generator().manual_seed(2))
    grads = []
    for pool in (nn.MaxPool2d(2), MaxPool2x2()):
        leaf = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(pool(leaf * 1.0), leaf, cotangents, is_grads_batched=True)
        grads.append(grad)
    assert torch.equal(*grads)


def test_channels_last_max_pool_under_torch_func_transforms():
    """``torch.func`` cannot change memory formats: under its transforms the plain kernel runs, with the
    same gradients as autograd's."""
    from benchmarks.models.encoders import MaxPool2x2

    x = _pool_inputs()
    pool = MaxPool2x2()
    func_grad = torch.func.grad(lambda t: pool(t).square().sum())(x)
    leaf = x.clone().requires_grad_()
    (autograd_grad,) = torch.autograd.grad(pool(leaf).square().sum(), leaf)
    assert torch.equal(func_grad, autograd_grad)
    batched = torch.func.vmap(pool)(torch.stack([x, 2 * x]))
    assert torch.equal(batched[1], nn.MaxPool2d(2)(2 * x))
