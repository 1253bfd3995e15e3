"""Causal building blocks of both priors: masked convolutions, gated layers, causal self-attention.

Generation order (what "before" means everywhere in this module)
- 2D (the bottom prior, one timestep ``[H, W]``): raster order, row ``y`` then column ``x``.
  Position ``(y', x')`` is before ``(y, x)`` iff ``y' < y`` or (``y' == y`` and ``x' < x``).
- 3D (the top prior, ``[T, H, W]``): timestep ``t``, then raster ``y, x`` within the frame. ``(t', y', x')`` is
  before ``(t, y, x)`` iff ``t' < t``, or ``t' == t`` and ``(y', x')`` is before ``(y, x)`` in raster order.
  Flattening ``[T, H, W]`` row-major (``einops 'b c t h w -> b (t h w) c'``) lists positions in this order.

Streams (the gated PixelCNN's vertical and horizontal stacks, van den Oord et al. 2016, and in 3D optionally a
third, the past stream), with invariants that hold after every layer:
- vertical stack ``v`` at ``u``: reads only inputs in rows strictly above ``u``'s row (2D); in 3D, inputs of
  earlier frames and of rows strictly above ``u``'s row in ``u``'s frame.
- horizontal stack ``h`` at ``u``: reads only inputs strictly before ``u``. The logits come from ``h``.
- past stream ``p`` (3D, ``past_stream=True``) at ``u = (t, y, x)``: reads only inputs of frames before ``t``,
  at any row and column: its first convolution reads frames ``t - kt .. t - 1`` (the input shifted by one
  timestep), its layers read ``p`` itself with spatial kernels that are not masked (``k x k`` in the current
  frame of ``p``) and temporal taps into earlier frames. Each layer feeds ``p``'s pre-activation into the
  vertical stack through a 1x1 link (as ``v`` feeds ``h``), hence into the horizontal stack too.

In 2D the two stacks have no blind spot. In 3D without the past stream they do: ``v`` and ``h`` read frame
``t - 1`` only through ``dt < 0`` taps that reach ``p = k // 2`` rows down per layer and then stop (in frame
``t - 1``, ``v`` itself only reads rows above), so in frame ``t - D`` the convolutions never see rows more than
``D * p`` below the current row, at any depth; only attention fills that in (paper Figure 3 says the causal
convolutions see all past information). The past stream removes the blind spot: its reach grows ``p`` rows and
columns per layer in every direction, so ``layers + 1 >= (max(H, W) - 1) / p`` layers see every position of
every earlier frame (paper grid 32x32, k = 3: 30 layers of the 40).

The only true 3D masked convolutions are the first layer's (paper §3.2); every gated layer of the 3D model
uses 2D convolutions in the y-t and x-t planes (kernels ``(kt, k, 1)`` and ``(kt, 1, k)``), and the past
stream a spatial ``(1, k, k)`` plus a temporal ``(kt - 1, 1, 1)`` one. Every convolution is a
:class:`CausalConv`: its output at position ``u`` reads its input at ``u + d`` for the offsets ``d`` of a box
``lo <= d <= hi`` where ``mask[d - lo] == 1``; the offsets are attributes (``lo``, ``hi``, ``mask``) so that an
incremental sampler can evaluate one output position from a cache of past inputs.

Masks (``p = k // 2``; ``kt`` taps in time, reaching ``kt - 1`` frames back; offsets ``(dt, dy, dx)``):

==========  ===========================  ==========================================================
stream      2D offsets (dy, dx)          3D offsets (dt, dy, dx)
==========  ===========================  ==========================================================
v, first    dy in [-p, -1], |dx| <= p    dt < 0: |dy|, |dx| <= p;  dt = 0: dy in [-p, -1], |dx| <= p
h, first    dy = 0, dx in [-p, -1]       dt < 0: all;  dt = 0: dy < 0, or dy = 0 and dx < 0  (mask A)
p, first    (none)                       dt in [-kt, -1], |dy|, |dx| <= p  (no mask)
v, layer    dy in [-p, 0], |dx| <= p     sum of y-t: (dt < 0, |dy| <= p) or (dt = 0, dy in [-p, 0]), dx = 0
                                         and x-t: dt <= 0, dy = 0, |dx| <= p
h, layer    dy = 0, dx in [-p, 0]        x-t: dy = 0; dt < 0, |dx| <= p, or dt = 0, dx in [-p, 0]
p, layer    (none)                       sum of dt = 0, |dy|, |dx| <= p  and  dt in [-(kt-1), -1], dy = dx = 0
==========  ===========================  ==========================================================

Reading ``v`` at offset ``dy = 0`` (same row) or any earlier frame is allowed because ``v`` there only reads
rows above / earlier frames; reading ``h`` at ``dx = 0`` is allowed because ``h`` at ``u`` excludes ``u``;
reading ``p`` anywhere in frames ``<= t`` is allowed because ``p`` at frame ``t`` reads only frames ``< t``.
Every gated layer also adds a 1x1 "link" from ``v``'s pre-activation to ``h`` (``v`` at ``u`` only reads
inputs before ``u``). Attention (:class:`CausalSelfAttention`) acts on ``h``: position ``i`` (flattened in
generation order) attends to ``j <= i``; its input at ``j`` is ``h_j`` plus the embedding of the token at
``j - 1`` (a learned start vector at ``j = 0``), both before ``j``, so before ``i``. The shifted token makes
every attention layer see the whole causal past, however shallow the convolutions above it.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


# --------------------------------------------------------------------------------------------- convolutions
class CausalConv(nn.Module):
    """2D or 3D convolution over explicit offsets: ``out[u] = b + sum_d W[d - lo] * mask[d - lo] * in[u + d]``.

    ``lo``/``hi`` (one int per spatial dim, inclusive) bound the offsets; ``mask`` (0/1 tensor of the box's
    shape, or None for the whole box) removes some. Inputs outside the grid are zero. Output shape = input
    shape (``[B, C, *S]`` -> ``[B, out, *S]``).
    """

    def __init__(self, in_channels: int, out_channels: int, lo: tuple[int, ...], hi: tuple[int, ...],
                 mask: torch.Tensor | None = None):
        super().__init__()
        self.lo, self.hi = tuple(lo), tuple(hi)
        self.kernel = tuple(h - l + 1 for l, h in zip(self.lo, self.hi))
        conv = {2: nn.Conv2d, 3: nn.Conv3d}[len(self.lo)]
        self.conv = conv(in_channels, out_channels, self.kernel)
        # F.pad takes (last dim left, last dim right, ...); a negative amount crops (offset box that ends
        # before 0, e.g. "rows strictly above": hi = -1 drops the last row).
        self.pad = tuple(v for l, h in zip(reversed(self.lo), reversed(self.hi)) for v in (-l, h))
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.float32, device="cpu")
            assert tuple(mask.shape) == self.kernel, (mask.shape, self.kernel)
            with torch.no_grad():  # masked weights are zero from the start (and receive zero gradient)
                self.conv.weight.mul_(mask.to(self.conv.weight.device))
        self.register_buffer("mask", mask, persistent=False)

    def weight(self) -> torch.Tensor:
        w = self.conv.weight
        return w if self.mask is None else w * self.mask.to(device=w.device, dtype=w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad)
        fn = F.conv2d if len(self.lo) == 2 else F.conv3d
        return fn(x, self.weight(), self.conv.bias)

    def offsets(self) -> list[tuple[int, ...]]:
        """The offsets ``d`` this convolution reads (for receptive fields and incremental samplers)."""
        return [tuple(i + l for i, l in zip(idx, self.lo)) for idx in itertools.product(*map(range, self.kernel))
                if self.mask is None or self.mask[idx] > 0]


class SumConv(nn.Module):
    """Sum of convolutions of the same input (the 3D vertical stack: a y-t plus an x-t convolution)."""

    def __init__(self, *convs: CausalConv):
        super().__init__()
        self.convs = nn.ModuleList(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(c(x) for c in self.convs)

    def offsets(self) -> list[tuple[int, ...]]:
        return sorted({d for c in self.convs for d in c.offsets()})


def _mask(kernel: tuple[int, ...], lo: tuple[int, ...], keep) -> torch.Tensor:
    """0/1 mask of a box: ``keep(offset tuple) -> bool``."""
    m = torch.zeros(kernel, device="cpu")
    for idx in itertools.product(*map(range, kernel)):
        m[idx] = float(bool(keep(tuple(i + l for i, l in zip(idx, lo)))))
    return m


def _box(lo, hi, keep=None):
    lo, hi = tuple(lo), tuple(hi)
    kernel = tuple(h - l + 1 for l, h in zip(lo, hi))
    return lo, hi, (None if keep is None else _mask(kernel, lo, keep))


def first_v_offsets(dims: int, k: int, kt: int):
    """(lo, hi, mask) of the first layer's vertical convolution (see the module table)."""
    p = k // 2
    if dims == 2:
        return _box((-p, -p), (-1, p))
    return _box((-(kt - 1), -p, -p), (0, p, p), lambda d: d[0] < 0 or d[1] < 0)


def first_h_offsets(dims: int, k: int, kt: int):
    """(lo, hi, mask) of the first layer's horizontal convolution: 2D same row left; 3D PixelCNN mask A."""
    p = k // 2
    if dims == 2:
        return _box((0, -p), (0, -1))
    return _box((-(kt - 1), -p, -p), (0, p, p), lambda d: d < (0, 0, 0))  # tuple order = generation order


def layer_v_offsets(dims: int, k: int, kt: int) -> list:
    """List of (lo, hi, mask) of a gated layer's vertical convolution(s) (3D: y-t and x-t, summed)."""
    p = k // 2
    if dims == 2:
        return [_box((-p, -p), (0, p))]
    return [_box((-(kt - 1), -p, 0), (0, p, 0), lambda d: d[0] < 0 or d[1] <= 0),
            _box((-(kt - 1), 0, -p), (0, 0, p))]


def layer_h_offsets(dims: int, k: int, kt: int):
    """(lo, hi, mask) of a gated layer's horizontal convolution (3D: x-t plane)."""
    p = k // 2
    if dims == 2:
        return _box((0, -p), (0, 0))
    return _box((-(kt - 1), 0, -p), (0, 0, p), lambda d: d[0] < 0 or d[2] <= 0)


def first_p_offsets(k: int, kt: int):
    """(lo, hi, mask) of the past stream's first convolution (3D only): frames ``t - kt .. t - 1``, unmasked."""
    p = k // 2
    return _box((-kt, -p, -p), (-1, p, p))


def layer_p_offsets(k: int, kt: int) -> list:
    """List of (lo, hi, mask) of a gated layer's past-stream convolutions (3D only, summed): ``k x k`` in the
    same frame of ``p`` and ``kt - 1`` taps into earlier frames, none masked (``p`` at t reads only frames < t)."""
    p = k // 2
    boxes = [_box((0, -p, -p), (0, p, p))]
    if kt > 1:
        boxes.append(_box((-(kt - 1), 0, 0), (-1, 0, 0)))
    return boxes


def _conv1x1(dims: int, cin: int, cout: int) -> nn.Module:
    return {2: nn.Conv2d, 3: nn.Conv3d}[dims](cin, cout, 1)


def gate(a: torch.Tensor) -> torch.Tensor:
    """Gated activation ``tanh(a1) * sigmoid(a2)`` over the two channel halves of ``a``."""
    a1, a2 = a.chunk(2, dim=1)
    return torch.tanh(a1) * torch.sigmoid(a2)


# --------------------------------------------------------------------------------------------- layers
class GatedLayer(nn.Module):
    """One gated layer on the (v, h) stacks, and the past stream p if ``past``, each with a residual connection:

        a_p = Pconv(p)                                          [B, 2R, T, H, W]   (past stream only)
        p'  = p + Op(gate(a_p))                                 (skipped in the last layer: nothing reads it)
        a_v = Vconv(v) + Lp(a_p) + Cv(c)                        [B, 2R, *S]   Lp: 1x1 link, past -> vertical
        v'  = v + Ov(gate(a_v))                                 (skipped in the last layer: nothing reads it)
        a_h = Hconv(h) + L(a_v) + Ch(c)                          L: 1x1 link, vertical -> horizontal
        h'  = h + Oh(dropout(gate(a_h)))

    ``C`` = hidden (stack width), ``R`` = residual (width of the gated activation), ``c`` = conditioning
    features ``[B, Cc, *S]`` (or None when ``cond_channels == 0``); Cv, Ch, Ov, Oh, Op are 1x1 convolutions.
    ``a_p`` reaches ``h`` through ``L(a_v)``: the past stream feeds both stacks.
    """

    def __init__(self, dims: int, hidden: int, residual: int, k: int, kt: int, cond_channels: int,
                 dropout: float, last: bool = False, past: bool = False):
        super().__init__()
        self.last = last
        if past:
            self.p_conv = SumConv(*(CausalConv(hidden, 2 * residual, *o) for o in layer_p_offsets(k, kt)))
            self.p_link = _conv1x1(dims, 2 * residual, 2 * residual)
            self.p_out = None if last else _conv1x1(dims, residual, hidden)
        else:
            self.p_conv = self.p_link = self.p_out = None
        self.v_conv = SumConv(*(CausalConv(hidden, 2 * residual, *o) for o in layer_v_offsets(dims, k, kt)))
        self.h_conv = CausalConv(hidden, 2 * residual, *layer_h_offsets(dims, k, kt))
        self.link = _conv1x1(dims, 2 * residual, 2 * residual)
        # the last layer computes no v (nothing reads it), so conditioning v there would leave unused parameters
        self.v_cond = _conv1x1(dims, cond_channels, 2 * residual) if cond_channels and not last else None
        self.h_cond = _conv1x1(dims, cond_channels, 2 * residual) if cond_channels else None
        self.v_out = None if last else _conv1x1(dims, residual, hidden)
        self.h_out = _conv1x1(dims, residual, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, v: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, p: torch.Tensor | None = None):
        """-> (v', h', p'): v' and p' are None in the last layer, p' is None without the past stream."""
        a_v = self.v_conv(v)
        if self.p_conv is not None:
            a_p = self.p_conv(p)
            a_v = a_v + self.p_link(a_p)
            p = None if self.last else p + self.p_out(gate(a_p))
        a_h = self.h_conv(h) + self.link(a_v)
        if c is not None:
            a_h = a_h + self.h_cond(c)
        if self.last:
            v = None
        else:
            if c is not None:
                a_v = a_v + self.v_cond(c)
            v = v + self.v_out(gate(a_v))
        h = h + self.h_out(self.dropout(gate(a_h)))
        return v, h, p


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over all positions of ``h`` ``[B, C, *S]``, flattened in generation order.

    Position ``i`` attends to positions ``j <= i`` (``h`` at ``j`` reads only inputs before ``j``).
    Pre-norm and residual: ``h + Wo(attn(LN(h + prev + pos)))``, where ``prev`` ``[B, C, *S]`` holds at each
    position the embedding of the previous token in generation order (the start vector at the first one) and
    ``pos`` ``[N, C]`` (N = prod(S)) is a learned positional embedding. An incremental sampler caches the keys
    and values of the positions already generated.
    """

    def __init__(self, hidden: int, heads: int, shape: tuple[int, ...], dropout: float):
        super().__init__()
        assert hidden % heads == 0, "hidden must be divisible by heads"
        self.heads, self.shape = heads, tuple(shape)
        self.pos = nn.Parameter(torch.randn(math.prod(self.shape), hidden) * 0.02)
        self.norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        assert tuple(h.shape[2:]) == self.shape, (h.shape, self.shape)
        x = rearrange(h + prev, "b c ... -> b (...) c")
        q, k, v = self.qkv(self.norm(x + self.pos)).chunk(3, dim=-1)
        q, k, v = (rearrange(z, "b n (m d) -> b m n d", m=self.heads) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = self.dropout(self.out(rearrange(y, "b m n d -> b n (m d)")))
        return h + y.transpose(1, 2).reshape(h.shape)


def attention_after(layers: int, attention_layers: int) -> list[int]:
    """0-based indices of the gated layers followed by attention: evenly spaced, the last after the last
    layer (40 layers, 8 attention layers: after layers 5, 10, ..., 40 counted from 1, "every five layers")."""
    if attention_layers > layers:
        raise ValueError(f"attention_layers={attention_layers} > layers={layers}")
    return [round((j + 1) * layers / attention_layers) - 1 for j in range(attention_layers)]


# --------------------------------------------------------------------------------------------- network
class PixelCNN(nn.Module):
    """Gated PixelCNN with causal self-attention over a grid ``shape`` (2D ``[H, W]`` or 3D ``[T, H, W]``).

    ``forward(x [B, *S] long, c [B, cond_channels, *S] | None) -> logits [B, K, *S]`` (teacher forcing):
    logits at ``u`` depend on ``x`` only at positions before ``u`` (module docstring), and on ``c`` anywhere.

    Structure: embedding(K, hidden) -> first layer (masked convs giving v, h, and p if ``past_stream``; 3D:
    true 3D masked convs) -> ``layers`` x GatedLayer, with CausalSelfAttention on h after the layers
    :func:`attention_after` names -> ELU -> 1x1 conv to K logits. ``filter_size`` k is the spatial kernel; the
    3D model also uses k taps in time (``kt = k``; they reach ``k - 1`` frames back). ``past_stream`` (3D only)
    adds the past stream (module docstring): without it the convolutions have a blind spot in earlier frames.

    ``copy_previous`` adds a copy term to the logits: ``logits[u] += g(c)[u] * onehot(s[u])``, where ``s[u]`` is
    the code at ``u``'s position one timestep earlier (3D: ``x`` at ``t - 1``, or ``before`` for ``t = 0``;
    2D, one timestep: ``before``, the previous timestep's codes) and the gate ``g`` a 1x1 conv of the
    conditioning ``c``. ``s[u]`` is an earlier token or conditioning, so causality holds. Why: keeping a static
    region's code must otherwise pass the code's identity through narrow features; at demo widths the priors
    drifted (static backgrounds changed colour), while repeating a code is the commonest event in video.
    """

    def __init__(self, codebook_size: int, shape: tuple[int, ...], hidden: int, residual: int, layers: int,
                 attention_layers: int, heads: int, filter_size: int, dropout: float, cond_channels: int,
                 past_stream: bool = False, copy_previous: bool = False):
        super().__init__()
        self.dims = len(shape)
        assert self.dims in (2, 3)
        assert filter_size % 2 == 1, "filter_size must be odd"
        if past_stream and self.dims != 3:
            raise ValueError("past_stream needs a 3D grid [T, H, W] (earlier frames)")
        k = kt = filter_size
        self.shape, self.codebook_size, self.filter_size = tuple(shape), codebook_size, filter_size
        self.past_stream = past_stream
        self.embed = nn.Embedding(codebook_size, hidden)
        # "previous token" of the first position, read by attention only (no parameter DDP would see unused)
        self.start = nn.Parameter(torch.zeros(hidden)) if attention_layers else None
        self.first_v = CausalConv(hidden, hidden, *first_v_offsets(self.dims, k, kt))
        self.first_h = CausalConv(hidden, hidden, *first_h_offsets(self.dims, k, kt))
        self.first_p = CausalConv(hidden, hidden, *first_p_offsets(k, kt)) if past_stream else None
        self.layers = nn.ModuleList(GatedLayer(self.dims, hidden, residual, k, kt, cond_channels, dropout,
                                               last=i == layers - 1, past=past_stream) for i in range(layers))
        self.attention_after = attention_after(layers, attention_layers)
        self.attention = nn.ModuleDict({str(i): CausalSelfAttention(hidden, heads, shape, dropout)
                                        for i in self.attention_after})
        self.head = _conv1x1(self.dims, hidden, codebook_size)
        if copy_previous and not cond_channels:
            raise ValueError("copy_previous needs conditioning features (its gate reads them)")
        self.copy_gate = _conv1x1(self.dims, cond_channels, 1) if copy_previous else None
        if self.copy_gate is not None:  # starts at even odds of copying against the K codes' uniform rest: with
            # a zero bias, Adam's ~lr-sized steps would need thousands of steps to reach the ~log K a copy needs
            nn.init.zeros_(self.copy_gate.weight), nn.init.constant_(self.copy_gate.bias, math.log(codebook_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, before: torch.Tensor | None = None) -> torch.Tensor:
        """``before`` [B, H, W] long: the codes one timestep before the grid (needed with ``copy_previous``)."""
        assert tuple(x.shape[1:]) == self.shape, (x.shape, self.shape)
        e = self.embed(x.long())  # [B, *S, C]
        prev = self.previous_tokens(e) if self.attention else None
        e = rearrange(e, "b ... c -> b c ...")
        v, h = self.first_v(e), self.first_h(e)
        p = self.first_p(e) if self.first_p is not None else None
        for i, layer in enumerate(self.layers):
            v, h, p = layer(v, h, c, p)
            if str(i) in self.attention:
                h = self.attention[str(i)](h, prev)
        logits = self.head(F.elu(h))
        if self.copy_gate is None:
            return logits
        return logits.scatter_add(1, self.copy_source(x, before)[:, None], self.copy_gate(c).to(logits.dtype))

    def copy_source(self, x: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
        """[B, *S] long: at each position the code one timestep earlier (the copy term's one-hot)."""
        if before is None:
            raise ValueError("copy_previous needs `before`, the codes one timestep before the grid")
        if self.dims == 2:
            return before.long()
        return torch.cat([before.long()[:, None], x.long()[:, :-1]], 1)

    def previous_tokens(self, e: torch.Tensor) -> torch.Tensor:
        """``e`` [B, *S, C] token embeddings -> [B, C, *S]: at each position the embedding of the token before
        it in generation order, ``self.start`` at the first position."""
        flat = rearrange(e, "b ... c -> b (...) c")
        start = self.start.to(flat.dtype).expand(flat.shape[0], 1, -1)
        flat = torch.cat([start, flat[:, :-1]], dim=1)
        return flat.transpose(1, 2).reshape(e.shape[0], e.shape[-1], *e.shape[1:-1])

    def receptive_field(self) -> dict:
        """Extent of the convolutional receptive field of the logits (offsets reached back/around), and
        whether attention extends it to the whole causal past."""
        p, n = self.filter_size // 2, len(self.layers) + 1
        names = ["y", "x"] if self.dims == 2 else ["t", "y", "x"]
        reach = {"y": f"{min(p * n, self.shape[-2] - 1)} rows above", "x": f"+-{min(p * n, self.shape[-1] - 1)} columns"}
        if self.dims == 3:
            reach["t"] = f"{min((self.filter_size - 1) * n, self.shape[0] - 1)} frames back"
        convolutions = {k: reach[k] for k in names}
        if self.dims == 3:
            if self.past_stream:  # first_p reaches +-p, each layer's spatial conv +-p more: n = layers + 1 steps
                r = p * n
                whole = r >= max(self.shape[1:]) - 1
                convolutions["earlier_frames"] = ("every position (past stream)" if whole else
                                                  f"+-{r} rows and columns around (y, x) (past stream)")
            else:
                convolutions["earlier_frames"] = f"blind spot: in frame t-D, rows more than {p}*D below y"
        return {"order": " -> ".join(names), "convolutions": convolutions,
                "with_attention": "the whole causal past" if self.attention else "convolutions only"}
