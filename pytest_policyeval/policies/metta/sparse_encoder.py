"""`Policy.encode` straight from an agent's tokens, without building its feature box.

The encoder's first operations on the box are linear: the division by `max_vec`, the first
convolution and the self encoder's Linear over the agent's own cell. Together they are one
fixed matrix from the box's cells to those layers' outputs. A box holds a few dozen tokens
(about 40 of 22x11x11 cells on a navigation map), so one `embedding_bag` over each agent's
tokens, summing the rows of that matrix weighted by the tokens' amounts, gives the same
outputs at a fraction of the cost of the box and the convolution. The rest of the encoder
(biases, activations, the second convolution, ...) runs as the policy defines it.

Results equal `Policy.encode(box)` up to float rounding (the sums run in another order); each
agent's sum depends only on its own tokens, so results stay the same whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pytest_policyeval.policies.metta.network import Policy


@torch.no_grad()
def first_layer_matrix(policy: Policy) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`[C*W*W + 1, conv outputs + self outputs]`: what one unit in each box cell adds to the
    first convolution (no bias) and to the self encoder's Linear (no bias); the last row, for
    tokens that land nowhere, is zero. Also the convolution's output shape `(channels, H, W)`."""
    conv, own = policy.network[0], policy.self_encoder[0]
    channels, window, scale = policy.obs_channels, policy.window, policy.scale
    cells = window * window
    centre = (window // 2) * window + window // 2
    # One unit per cell of one channel at a time: a [cells, 1, W, W] basis through that
    # channel's slice of the kernel.
    like = {"dtype": conv.weight.dtype, "device": conv.weight.device}
    basis = torch.eye(cells, **like).view(cells, 1, window, window)
    rows = []
    for channel in range(channels):
        through_conv = F.conv2d(
            basis, conv.weight[:, channel : channel + 1], stride=conv.stride, padding=conv.padding
        )
        through_self = torch.zeros((cells, own.out_features), **like)
        through_self[centre] = own.weight[:, channel]
        rows.append(torch.cat([through_conv.flatten(1), through_self], dim=1) * scale[channel])
    rows.append(torch.zeros_like(rows[0][:1]))
    return torch.cat(rows).contiguous(), tuple(through_conv.shape[1:])


class SparseEncoder(nn.Module):
    """Indices and amounts from `ObservationMap.cells` -> `Policy.encode` of their box."""

    def __init__(self, policy: Policy):
        super().__init__()
        self.policy = policy
        matrix, self.conv_shape = first_layer_matrix(policy)
        self.register_buffer("matrix", matrix)
        self.nowhere = matrix.shape[0] - 1
        channels, height, width = self.conv_shape
        self.conv_outputs = channels * height * width
        bias = policy.network[0].bias.detach()
        self.register_buffer("conv_bias", bias.repeat_interleave(height * width))
        # Metta's second convolution covers its whole input (3x3 over 3x3): a matrix product
        # then, about 3x cheaper on a CPU than a convolution call.
        second = policy.network[2]
        self.second_is_dense = second.kernel_size == (height, width) and second.padding == (0, 0)

    def forward(self, index: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
        summed = F.embedding_bag(
            index, self.matrix, per_sample_weights=amount, mode="sum", padding_idx=self.nowhere
        )
        network = self.policy.network
        first = summed[:, : self.conv_outputs] + self.conv_bias
        if self.second_is_dense:
            second = network[2]
            dense = F.linear(network[1](first), second.weight.flatten(1), second.bias)
            cnn = network[3:](dense)
        else:
            cnn = network[1:](first.view(-1, *self.conv_shape))
        own = summed[:, self.conv_outputs :] + self.policy.self_encoder[0].bias
        return torch.cat([self.policy.self_encoder[1:](own), cnn], dim=1)
