"""The last layer of DAGR's last-layer α (not the paper's rule): the Gram matrix of a convolution's weight
gradients from its input against the gradients themselves, the route taken, and its misuse."""
import pytest
import torch
from torch import nn

from geomreg import DAGR, LastLayer
from geomreg.lastlayer import conv2d_weight_gram, gram_macs, recording, weight_gradient_macs
from geomreg.pareto import geometry_alpha

from test_dagr_alpha import SUBSTRATES, model_and_embeddings


def explicit_gram(x, deltas, conv):
    """The Gram matrix of the weight gradients themselves, in float64."""
    grads = [torch.nn.grad.conv2d_weight(x.double(), conv.weight.shape, d.double(), stride=conv.stride,
                                         padding=conv.padding, dilation=conv.dilation) for d in deltas]
    return torch.tensor([[float((a * b).sum()) for b in grads] for a in grads], dtype=torch.float64)


@pytest.mark.parametrize("kernel, stride, padding, dilation, hw", [
    (3, 1, 1, 1, (7, 7)),  # ResNet-18's last convolution
    (3, 2, 1, 1, (9, 6)),
    (1, 1, 0, 1, (5, 4)),
    ((3, 2), (2, 1), (0, 1), 1, (8, 7)),
    (3, 1, 2, 2, (6, 6)),
])
def test_gram_from_the_input_is_the_gram_of_the_weight_gradients(kernel, stride, padding, dilation, hw):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 4, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)
    x = torch.randn(3, 5, *hw)
    out_shape = conv(x).shape
    deltas = [torch.randn(out_shape) for _ in range(3)]
    got = conv2d_weight_gram(x, deltas, conv)
    assert got.shape == (3, 3) and got.dtype == torch.float64
    torch.testing.assert_close(got, explicit_gram(x, deltas, conv), rtol=1e-5, atol=1e-6)


def test_the_route_is_the_one_with_fewer_multiply_adds():
    resnet_last = nn.Conv2d(512, 512, 3, padding=1, bias=False)  # batch 16, 7×7 positions
    assert weight_gradient_macs((16, 512, 7, 7), resnet_last) == 2 * 784 * 4608 * 512
    assert gram_macs((16, 512, 7, 7), (16, 512, 7, 7), resnet_last) == 1296 ** 2 * 512 + 784 ** 2 * (1024 + 9)
    small_cnn_last = nn.Conv2d(32, 64, 3, padding=1, bias=False)  # batch 64, 5×6 positions
    assert (gram_macs((64, 32, 5, 6), (64, 64, 5, 6), small_cnn_last)
            > weight_gradient_macs((64, 64, 5, 6), small_cnn_last))
    for conv, shape, uses_input in ((resnet_last, (16, 512, 7, 7), True), (small_cnn_last, (64, 32, 5, 6), False)):
        layer = LastLayer(conv)
        with layer.recording():
            conv(torch.randn(shape))
        assert (layer.pull_back_targets()[0] is not conv.weight) == uses_input


@pytest.mark.parametrize("substrate", ["small_cnn", "resnet18"])
def test_last_layer_alpha_is_the_alpha_of_its_parameters(substrate):
    """Recorded or not, and by either route, α is that of the last layer's parameter gradients; where the
    parameters' route is taken it is the same computation, bit for bit."""
    encoder, batch, audio_hw, visual_hw = SUBSTRATES[substrate]
    model, _ = model_and_embeddings(*SUBSTRATES[substrate])
    torch.manual_seed(1)
    inputs = {"audio": torch.randn(batch, 1, *audio_hw), "visual": torch.randn(batch, 3, *visual_hw)}
    layers = {m: model.last_layer(m) for m in model.modalities}
    with recording(*layers.values()):
        emb = model(inputs).embeddings
    dagr = DAGR(alpha="last_layer", tau=0.1)
    terms = dagr(emb)
    params = {m: list(model.encoder_parameters(m)) for m in model.modalities}
    routes = {m: layer.pull_back_targets()[0] is not layer.parameters()[0] for m, layer in layers.items()}
    by_layer = dagr.geometry_gradients(terms, emb, params, alpha_params=layers).alphas
    by_params = dagr.geometry_gradients(terms, emb, params,
                                        alpha_params={m: layers[m].parameters() for m in layers}).alphas
    assert set(routes.values()) == {substrate == "resnet18"}  # the small inputs keep ResNet-18 on the Gram
    for m in model.modalities:
        assert 0 < float(by_params[m]) < 1
        if routes[m]:
            assert float(by_layer[m]) == pytest.approx(float(by_params[m]), rel=1e-5)
        else:
            assert torch.equal(by_layer[m], by_params[m])
    again = dagr.geometry_gradients(terms, emb, params, alpha_params=layers).alphas  # the recording is used up
    for m in model.modalities:
        assert torch.equal(again[m], by_params[m])


def test_a_convolution_bias_and_the_norm_after_it_count_in_the_gram():
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(64, 64, 3, padding=1, bias=True), nn.BatchNorm2d(64)
    layer = LastLayer(conv, norm)
    x = torch.randn(2, 64, 3, 3)
    with layer.recording():
        out = norm(conv(x)).mean((2, 3))
    assert layer.pull_back_targets()[0] is not conv.weight  # 16² · 64 + 18² · 137 < 2 · 18 · 576 · 64
    u_d, u_i = torch.randn_like(out), torch.randn_like(out)
    targets = layer.pull_back_targets()
    disp = torch.autograd.grad(out, targets, u_d, retain_graph=True)
    inter = torch.autograd.grad(out, targets, u_i, retain_graph=True)
    got = layer.alpha(disp, inter)
    params = layer.parameters()
    assert len(params) == 4  # weight, bias, and the norm's two
    want = geometry_alpha(torch.autograd.grad(out, params, u_d, retain_graph=True),
                          torch.autograd.grad(out, params, u_i))
    assert 0 < float(want) < 1
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_misuse_is_an_error_that_says_what_to_record():
    conv = nn.Conv2d(512, 512, 3, padding=1, bias=False)
    layer = LastLayer(conv)
    with pytest.raises(RuntimeError, match="ran twice while recording"):
        with layer.recording():
            conv(torch.randn(16, 512, 7, 7))
            conv(torch.randn(16, 512, 7, 7))
    with layer.recording():
        recorded = conv(torch.randn(16, 512, 7, 7))
    with torch.no_grad(), layer.recording():  # an evaluation pass records nothing
        conv(torch.randn(16, 512, 7, 7))
    assert layer.pull_back_targets()[0] is conv.weight  # nothing recorded: the parameters' route
    with layer.recording():
        conv(torch.randn(16, 512, 7, 7))
    other = recorded.mean()  # not the recorded pass
    targets = layer.pull_back_targets()
    grads = torch.autograd.grad(other, targets, allow_unused=True)
    with pytest.raises(RuntimeError, match="not in the embeddings' graph"):
        layer.alpha(grads, grads)
