"""Incremental sampling: each new token costs one position's work, not a whole grid's.

The naive sampler (:mod:`vqvideo.sampling.naive`) runs the whole PixelCNN once per token. This one caches
what earlier tokens computed, in the manner of fast generation for convolutional autoregressive models
(Fast PixelCNN++, fast WaveNet generation), and draws the same tokens from the same generator in the same
order, so for a given seed both give the same samples.

What is cached (per grid being generated; :mod:`vqvideo.models.pixelcnn` defines the layers):
- activation buffers, the full grid zero-padded: the token embeddings ``E``, and the inputs ``V[l]``, ``H[l]``
  of every gated layer's vertical and horizontal stack. Every convolution is a ``CausalConv`` with explicit
  offsets (``lo``, ``hi``, ``mask``), so one output position (or one row) is a convolution of a small slice
  of a buffer: the positions it reads are already there, and the masked-out ones are multiplied by zero.
- key/value caches of every attention layer ``[B, heads, N, d]``: a new position computes its own
  query/key/value and attends to the cached keys of the positions before it.

Schedule. The past stream (3D, ``past_stream``) at a position reads only earlier frames, so at the start of
every frame it is computed for the whole frame at once, in every layer, and each layer's link into the vertical
stack is kept for that frame (buffers ``P[l]`` hold its inputs; later frames read them through the temporal
taps). The vertical stack at a position reads only rows above it (and earlier frames), so at the start of
every row the vertical stacks of all layers are computed for the whole row at once (one convolution per layer
over a strip of rows), together with each layer's link into the horizontal stack and its conditioning term.
Per position, only the horizontal stack is left: per layer one small matrix product over a patch of the
cached ``H[l]``, the gate, a 1x1 matrix product and the residual; attention adds one query against the cache.
That row batching is what keeps a cached step cheap on a CPU, where a step is dominated by per-call overhead.

The results equal the naive sampler's up to floating-point rounding (the same sums in another order); the
tokens are identical unless a uniform draw lands within rounding error of a boundary between two tokens,
which tests/sampling/test_pipeline.py and benchmarks/sampling.py check does not happen.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vqvideo.models.pixelcnn import CausalConv, PixelCNN, SumConv
from vqvideo.sampling import naive


# --------------------------------------------------------------------------------------------- buffers
class _Buffer:
    """A zero-padded activation grid ``[B, C, *(S + pad_lo + pad_hi)]`` that convolutions read slices of."""

    def __init__(self, batch: int, channels: int, shape, readers: list[CausalConv], like: torch.Tensor):
        dims = len(shape)
        self.lo = [max([0] + [-c.lo[d] for c in readers]) for d in range(dims)]
        hi = [max([0] + [c.hi[d] for c in readers]) for d in range(dims)]
        self.t = like.new_zeros(batch, channels, *(s + a + b for s, a, b in zip(shape, self.lo, hi)))

    def window(self, conv: CausalConv, start, stop) -> torch.Tensor:
        """What ``conv`` reads to compute its outputs at the box ``start..stop`` (inclusive)."""
        idx = tuple(slice(a + l + p, b + h + p + 1) for a, b, l, h, p in zip(start, stop, conv.lo, conv.hi, self.lo))
        return self.t[(slice(None), slice(None)) + idx]

    def at(self, pos) -> tuple:
        return (slice(None), slice(None)) + tuple(i + p for i, p in zip(pos, self.lo))

    def interior(self, shape) -> tuple:
        """Index of the whole grid (without the padding)."""
        return (slice(None), slice(None)) + tuple(slice(p, p + n) for p, n in zip(self.lo, shape))

    def write(self, prefix, value: torch.Tensor) -> None:
        """Store ``value`` [B, C, *rest] at ``prefix`` (the leading coordinates; a row: all but the last, a
        frame: the timestep), over the whole extent of the remaining ones."""
        rest = self.lo[len(prefix):]
        self.t[self.at(prefix) + tuple(slice(a, a + n) for a, n in zip(rest, value.shape[2:]))] = value


class _Conv:
    """A CausalConv (or SumConv) prepared for one position (matrix product) and one row (convolution)."""

    @torch.no_grad()
    def __init__(self, conv: nn.Module):
        self.parts = list(conv.convs) if isinstance(conv, SumConv) else [conv]
        self.weights = [c.weight() for c in self.parts]  # masked once, not per call
        self.flat = [(w.reshape(w.shape[0], -1).t().contiguous(), c.conv.bias) for c, w in zip(self.parts, self.weights)]
        self.fn = F.conv2d if len(self.parts[0].lo) == 2 else F.conv3d

    def point(self, buf: _Buffer, pos) -> torch.Tensor:
        """Output at ``pos``: [B, Cout]."""
        out = None
        for c, (wt, b) in zip(self.parts, self.flat):
            patch = buf.window(c, pos, pos).reshape(buf.t.shape[0], -1)
            out = torch.addmm(b, patch, wt) if out is None else out.addmm_(patch, wt).add_(b)
        return out

    def row(self, buf: _Buffer, prefix, width: int) -> torch.Tensor:
        """Outputs at every column of row ``prefix``: [B, Cout, W]."""
        return self.box(buf, prefix, (width,))

    def box(self, buf: _Buffer, prefix, rest) -> torch.Tensor:
        """Outputs at ``prefix`` (leading coordinates) and every value of the remaining ones, of sizes
        ``rest`` (a row: ``(W,)``; a frame: ``(H, W)``): [B, Cout, *rest]."""
        start, stop = tuple(prefix) + (0,) * len(rest), tuple(prefix) + tuple(n - 1 for n in rest)
        out = None
        for c, w in zip(self.parts, self.weights):
            y = self.fn(buf.window(c, start, stop), w, c.conv.bias)
            out = y if out is None else out + y
        return out.reshape(out.shape[0], out.shape[1], *rest)


class _Linear:
    """A 1x1 convolution (or nn.Linear) as a matrix: rows [B, Cin] -> [B, Cout], strips [B, Cin, *rest]."""

    @torch.no_grad()
    def __init__(self, m: nn.Module):
        w = m.weight.reshape(m.weight.shape[0], -1)
        self.wt, self.w, self.b, self.b_col = w.t().contiguous(), w, m.bias, m.bias[:, None]

    def point(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, x, self.wt)

    def row(self, x: torch.Tensor) -> torch.Tensor:
        """[B, Cin, *rest] -> [B, Cout, *rest] ([Cout, Cin] @ [B, Cin, W]: cheaper than conv1d)."""
        y = torch.matmul(self.w, x.flatten(2)).add_(self.b_col)
        return y.view(*y.shape[:2], *x.shape[2:])


def _maybe(m: nn.Module | None) -> _Linear | None:
    return None if m is None else _Linear(m)


def _gate(a: torch.Tensor, dim: int) -> torch.Tensor:
    a1, a2 = a.chunk(2, dim=dim)
    return torch.tanh(a1) * torch.sigmoid(a2)


# --------------------------------------------------------------------------------------------- sampler
class IncrementalPixelCNN:
    """Samples a :class:`PixelCNN` grid position by position with cached activations (module docstring)."""

    def __init__(self, net: PixelCNN):
        if net.training:
            raise ValueError("sample with the model in eval mode (dropout would make the samplers differ)")
        self.net = net
        self.first_v, self.first_h = _Conv(net.first_v), _Conv(net.first_h)
        self.first_p = None if net.first_p is None else _Conv(net.first_p)
        self.layers = []
        for layer in net.layers:
            self.layers.append({
                "v": _Conv(layer.v_conv), "h": _Conv(layer.h_conv), "link": _Linear(layer.link),
                "v_cond": _maybe(layer.v_cond), "h_cond": _maybe(layer.h_cond), "v_out": _maybe(layer.v_out),
                "h_out": _Linear(layer.h_out),
                "p": None if layer.p_conv is None else _Conv(layer.p_conv),
                "p_link": _maybe(layer.p_link), "p_out": _maybe(layer.p_out),
            })
        self.attention = {int(i): a for i, a in net.attention.items()}
        self.head = _Linear(net.head)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor | None, noise: torch.Tensor, temperature: float,
               prefix: torch.Tensor | None = None, start: int = 0, keep_logits: bool = False,
               on_token: Callable[[int], None] | None = None, before: torch.Tensor | None = None):
        """Sample one grid: ``cond`` [B, Cc, *S] (or None), ``noise`` [B, *S, K] uniform (the naive sampler's
        draw rule: position ``u`` uses ``noise[:, u]``) -> codes [B, *S] long, in generation order.

        ``prefix`` [B, *S] with ``start`` > 0: the first ``start`` positions (generation order) are taken from
        it and their activations computed in one teacher-forced pass; sampling continues from there.
        ``keep_logits``: also return the logits of every sampled position ([B, K, *S], zero before ``start``).
        ``before`` [B, H, W]: the codes one timestep before the grid (the copy term's, with ``copy_previous``).
        """
        with _one_cpu_thread(self.net.embed.weight.device):
            return self._sample(cond, noise, temperature, prefix, start, keep_logits, on_token, before)

    def _sample(self, cond, noise, temperature, prefix, start, keep_logits, on_token, before):
        net = self.net
        shape = net.shape
        width, n = shape[-1], math.prod(shape)
        b = noise.shape[0]
        like = net.embed.weight
        hidden = like.shape[1]
        # activation buffers, padded for the convolutions that read them
        first_p = self.first_p.parts if self.first_p is not None else []
        e_buf = _Buffer(b, hidden, shape, self.first_v.parts + self.first_h.parts + first_p, like)
        v_bufs = [_Buffer(b, hidden, shape, l["v"].parts, like) for l in self.layers]
        h_bufs = [_Buffer(b, hidden, shape, l["h"].parts, like) for l in self.layers]
        p_bufs = [_Buffer(b, hidden, shape, l["p"].parts, like) for l in self.layers] if first_p else None
        p_terms = None  # each layer's link from the past stream into the vertical one, this frame: [B, 2R, H, W]
        caches = {i: (like.new_zeros(b, a.heads, n, hidden // a.heads), like.new_zeros(b, a.heads, n, hidden // a.heads))
                  for i, a in self.attention.items()}
        codes = torch.zeros((b, *shape), dtype=torch.long, device=like.device)
        logits_all = like.new_zeros(b, net.codebook_size, *shape) if keep_logits else None
        # embedding of the token before the current one (attention's input; no start vector without attention)
        prev = net.start.expand(b, -1) if net.start is not None else None
        if start > 0:
            prev = self._prefill(prefix, start, cond, codes, e_buf, v_bufs, h_bufs, p_bufs, caches)
            if on_token is not None:
                on_token(start)  # ``on_token(k)``: the first k positions are done
        copy_gate = None if net.copy_gate is None else net.copy_gate(cond)  # [B, 1, *S]: cond is known whole
        positions = list(_positions(shape))
        for flat in range(start, n):
            pos = positions[flat]
            prefix_, x = pos[:-1], pos[-1]
            if p_bufs is not None and (pos[1:] == (0, 0) or flat == start):
                p_terms = self._frame_start(pos[0], e_buf, p_bufs)
            if x == 0 or flat == start:
                c_row = None if cond is None else cond[(slice(None), slice(None)) + prefix_]  # [B, Cc, W]
                p_row = None if p_terms is None else [term[:, :, pos[1]] for term in p_terms]
                link_terms = self._row_start(prefix_, width, e_buf, v_bufs, c_row, p_row)
            h = self.first_h.point(e_buf, pos)
            for i, (layer, hb) in enumerate(zip(self.layers, h_bufs)):
                hb.t[hb.at(pos)] = h
                a = layer["h"].point(hb, pos).add_(link_terms[i][x])
                h = h + layer["h_out"].point(_gate(a, 1))
                if i in self.attention:
                    h = self._attend(self.attention[i], caches[i], h, prev, flat)
            logits = self.head.point(F.elu(h))
            if copy_gate is not None:
                logits = logits.scatter_add(1, self._copy_source(codes, before, pos)[:, None],
                                            copy_gate[(slice(None), slice(None)) + pos].to(logits.dtype))
            if keep_logits:
                logits_all[(slice(None), slice(None)) + pos] = logits
            token = naive.draw(logits, noise[(slice(None),) + pos], temperature)
            codes[(slice(None),) + pos] = token
            prev = net.embed(token)
            e_buf.t[e_buf.at(pos)] = prev
            if on_token is not None:
                on_token(flat + 1)
        return (codes, logits_all) if keep_logits else codes

    def _copy_source(self, codes: torch.Tensor, before: torch.Tensor | None, pos: tuple) -> torch.Tensor:
        """[B] long: the code one timestep before ``pos`` (as :meth:`PixelCNN.copy_source`)."""
        if before is None:
            raise ValueError("copy_previous needs `before`, the codes one timestep before the grid")
        if self.net.dims == 2 or pos[0] == 0:
            return before[(slice(None),) + pos[-2:]].long()
        return codes[(slice(None), pos[0] - 1) + pos[1:]]

    def _prefill(self, prefix, start, cond, codes, e_buf, v_bufs, h_bufs, p_bufs, caches) -> torch.Tensor:
        """Fill the caches with a teacher-forced pass over ``prefix`` (the naive forward, its activations kept);
        copy its first ``start`` positions into ``codes``. Activations at positions >= start are overwritten
        before anything reads them with a non-zero weight (the past stream's from the frame of ``start`` on).
        Returns the embedding of token ``start - 1``."""
        net = self.net
        keep = torch.arange(math.prod(net.shape), device=codes.device).view(net.shape) < start
        codes.copy_(torch.where(keep, prefix.long(), torch.zeros_like(prefix, dtype=torch.long)))
        e = net.embed(codes)                                                     # [B, *S, C]
        prev_all = net.previous_tokens(e) if net.attention else None
        e = torch.movedim(e, -1, 1)
        e_buf.t[e_buf.interior(net.shape)] = e * keep.to(e.dtype)
        v, h = net.first_v(e), net.first_h(e)
        p = net.first_p(e) if net.first_p is not None else None
        for i, layer in enumerate(net.layers):
            for buf, val in ((v_bufs[i], v), (h_bufs[i], h)) + (((p_bufs[i], p),) if p is not None else ()):
                buf.t[buf.interior(net.shape)] = val
            v, h, p = layer(v, h, cond, p)
            if str(i) in net.attention:
                attn = net.attention[str(i)]
                x = torch.movedim(h + prev_all, 1, -1).reshape(h.shape[0], -1, h.shape[1])
                _, k, vv = attn.qkv(attn.norm(x + attn.pos)).chunk(3, dim=-1)
                for cache, z in zip(caches[i], (k, vv)):
                    cache.copy_(z.view(z.shape[0], z.shape[1], attn.heads, -1).transpose(1, 2))
                h = attn(h, prev_all)
        return net.embed(codes.flatten(1)[:, start - 1])

    def _frame_start(self, t: int, e_buf, p_bufs) -> list[torch.Tensor]:
        """Past stream of every layer for the whole frame ``t`` (it reads only frames < t, all generated);
        returns each layer's link into the vertical stack ``Lp(a_p)`` [B, 2R, H, W]."""
        rest = self.net.shape[1:]
        p = self.first_p.box(e_buf, (t,), rest)                                 # [B, C, H, W]
        terms = []
        for layer, pb in zip(self.layers, p_bufs):
            pb.write((t,), p)
            a_p = layer["p"].box(pb, (t,), rest)                                # [B, 2R, H, W]
            terms.append(layer["p_link"].row(a_p))
            if layer["p_out"] is not None:
                p = p + layer["p_out"].row(_gate(a_p, 1))
        return terms

    def _row_start(self, prefix, width, e_buf, v_bufs, c_row, p_row=None) -> list[torch.Tensor]:
        """Vertical stacks of every layer for the whole row; returns each layer's additive term of the
        horizontal stack (link from the vertical stack + conditioning) as [W, B, 2R]. ``p_row``: each layer's
        past-stream term of this row [B, 2R, W] (or None)."""
        v = self.first_v.row(e_buf, prefix, width)
        terms = []
        for i, (layer, vb) in enumerate(zip(self.layers, v_bufs)):
            vb.write(prefix, v)
            a_v = layer["v"].row(vb, prefix, width)                            # [B, 2R, W]
            if p_row is not None:
                a_v = a_v + p_row[i]
            term = layer["link"].row(a_v)
            if c_row is not None:
                term = term + layer["h_cond"].row(c_row)
            terms.append(term.permute(2, 0, 1).contiguous())
            if layer["v_out"] is not None:  # (the last layer has no vertical output, nor its conditioning)
                if c_row is not None:
                    a_v = a_v + layer["v_cond"].row(c_row)
                v = v + layer["v_out"].row(_gate(a_v, 1))
        return terms

    @staticmethod
    def _attend(attn, cache, h: torch.Tensor, prev: torch.Tensor, i: int) -> torch.Tensor:
        """One query of CausalSelfAttention at flat position ``i``: h [B, C] -> [B, C]."""
        k_cache, v_cache = cache
        b, c = h.shape
        m = attn.heads
        x = attn.norm(h + prev + attn.pos[i])
        q, k, v = attn.qkv(x).chunk(3, dim=-1)
        k_cache[:, :, i] = k.view(b, m, -1)
        v_cache[:, :, i] = v.view(b, m, -1)
        y = F.scaled_dot_product_attention(q.view(b, m, 1, -1), k_cache[:, :, :i + 1], v_cache[:, :, :i + 1])
        return h + attn.out(y.reshape(b, c))


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """On a CPU, run with one intra-op thread: a cached step is ~10 tiny operations per layer, which more
    threads only slow down (synchronisation; 10-25x slower on a busy 2-core machine, measured)."""
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _positions(shape):
    """Grid positions in generation order (row-major: t, then y, then x)."""
    return itertools.product(*(range(s) for s in shape))


# --------------------------------------------------------------------------------------------- priors
@torch.no_grad()
def sample_top(prior, cond, temperature: float = 1.0, generator: torch.Generator | None = None,
               on_token: Callable[[int], None] | None = None) -> torch.Tensor:
    """``cond = (cond_top [B, 1, h, w], cond_bottom [B, 2, H, W])`` -> top codes [B, 1 + T, h, w] (long):
    the conditioning timestep followed by the T sampled ones. Same signature, RNG use and result as
    :func:`vqvideo.sampling.naive.sample_top`."""
    cond_top, cond_bottom = (c.long() for c in cond)
    b, device = cond_top.shape[0], cond_top.device
    features = prior.condition(cond_top, cond_bottom)
    noise = naive.gumbel_noise((b, *prior.shape, prior.codebook_size), generator, device)
    sampled = IncrementalPixelCNN(prior.pixelcnn).sample(features, noise, temperature, on_token=on_token,
                                                         before=cond_top[:, -1])
    return torch.cat([cond_top, sampled], 1)


@torch.no_grad()
def sample_bottom(prior, top: torch.Tensor, cond_bottom: torch.Tensor, temperature: float = 1.0,
                  generator: torch.Generator | None = None,
                  on_token: Callable[[int], None] | None = None) -> torch.Tensor:
    """``top`` [B, Tt, h, w], ``cond_bottom`` [B, first, H, W] -> bottom codes [B, Tb, H, W] (long):
    timesteps first..Tb-1 sampled one after another, each conditioned on the top and its predecessors.
    Same signature, RNG use and result as :func:`vqvideo.sampling.naive.sample_bottom`."""
    top, cond_bottom = top.long(), cond_bottom.long()
    b, device = top.shape[0], top.device
    if cond_bottom.shape[1] != prior.first:
        raise ValueError(f"cond_bottom has {cond_bottom.shape[1]} timesteps, the prior expects {prior.first}")
    bottom = torch.zeros((b, prior.timesteps, *prior.shape), dtype=torch.long, device=device)
    bottom[:, :prior.first] = cond_bottom
    up = prior.upsample_top(top)
    sampler = IncrementalPixelCNN(prior.pixelcnn)
    done = 0
    for n in range(prior.first, prior.timesteps):
        steps = torch.full((b, 1), n, dtype=torch.long, device=device)
        features = prior.condition(up[:, :, n], prior.past(bottom, steps)[:, 0])
        noise = naive.gumbel_noise((b, *prior.shape, prior.codebook_size), generator, device)
        step_cb = None if on_token is None else (lambda i, d=done: on_token(d + i))
        bottom[:, n] = sampler.sample(features, noise, temperature, on_token=step_cb, before=bottom[:, n - 1])
        done += math.prod(prior.shape)
    return bottom
