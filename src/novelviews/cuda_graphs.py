"""CUDA graphs of a denoiser ``eps_fn(x_t, t)``: one call captured and replayed.

* :func:`graphed_denoiser` captures one ``eps_fn`` for a fixed input shape (``sampling.cuda_graph``
  within one :func:`novelviews.sampling.sample` call);
* :class:`DenoiserGraphs` keeps such graphs per input shape and replays them for later batches and
  calls, copying each batch's conditioning into the graph's static buffers (``generation.generate``
  through :func:`denoiser_graphs`, one per model; the SDS denoiser of ``nerf.guidance``).
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Callable, Sequence

import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def graphed_denoiser(eps_fn: EpsFn, shape: Sequence[int], device, warmup: int = 2) -> EpsFn:
    """``eps_fn`` captured once in a CUDA graph for inputs ``x [shape]`` (float32) and ``t [B]``
    (long), replayed on every call.

    A UNet call is hundreds of small kernels; replaying a graph launches them all at once, so
    a step stops costing the host's per-op time (the batch-1 latency is launch-bound;
    docs/BENCHMARKS.md). The conditioning that ``eps_fn`` closes over (context, conditioning
    latent) must stay alive and unchanged while the returned function is used, which holds
    for :func:`guided_denoiser` within one :func:`sample` call. Inputs are copied into static
    buffers; the output is a fresh tensor. CUDA only.
    """
    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError("graphed_denoiser needs a CUDA device (sampling.cuda_graph is ignored on CPU)")
    static_x = torch.randn(tuple(shape), device=dev, dtype=torch.float32)
    static_t = torch.full((shape[0],), 500, device=dev, dtype=torch.long)
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):  # warm-up off the capture (cuDNN / cuBLAS workspaces, lazy init)
        for _ in range(max(1, warmup)):
            eps_fn(static_x, static_t)
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = eps_fn(static_x, static_t)

    def replay(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        static_x.copy_(x_t)
        static_t.copy_(t)
        graph.replay()
        return static_out.clone()

    return replay


class DenoiserGraphs:
    """CUDA graphs of a conditioned denoiser, one per input shape, replayed across batches and calls.

    ``graphs(make, conditioning, shape, device, extra)``: ``make(*static)`` builds ``eps_fn(x_t, t)``
    over static copies of ``conditioning`` (tensors: context, conditioning latent, anchor weights)
    and the first call for a key captures it (:func:`graphed_denoiser`); every later call copies
    its own conditioning into those copies, so the replay computes the eager call on the new
    values, without the warm-up and capture (a few UNet calls each time). ``make`` must read the
    conditioning inside ``eps_fn`` (nothing derived from it once, at construction). The key: the
    shape of ``x``, the conditioning's shapes, dtypes and devices, ``extra`` (what else the
    captured kernels depend on: guidance scale, precision, compile state) and, with ``model``,
    the addresses of its parameters (weights moved or replaced: new graphs; weights changed in
    place are read by the replay as they are). At most ``limit`` graphs are kept, least recently
    used first out: each holds its own pool of activation memory (``clear`` frees them). A returned
    ``eps_fn`` is valid until the next call from the same thread (each thread has its own graphs).
    """

    def __init__(self, model=None, limit: int = 2):
        self._model = None if model is None else weakref.ref(model)
        self.limit = int(limit)
        self._graphs: collections.OrderedDict = collections.OrderedDict()
        self.captures = 0  # graphs captured so far (a replayed call adds none)

    @property
    def model(self):
        return None if self._model is None else self._model()

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, make: Callable[..., EpsFn], conditioning: Sequence[torch.Tensor], shape: Sequence[int],
                 device, extra: tuple = ()) -> EpsFn:
        model = self.model
        unet = getattr(model, "unet", model)  # the captured call runs the UNet's weights
        weights = None if unet is None else hash(tuple(p.data_ptr() for p in unet.parameters()))
        # one thread's batches never share buffers with another's (a web server sampling in parallel)
        key = (tuple(shape), tuple((tuple(c.shape), c.dtype, str(c.device)) for c in conditioning), extra, weights,
               threading.get_ident())
        entry = self._graphs.get(key)
        with torch.inference_mode(False):  # buffers that later calls may write outside inference mode
            if entry is None:
                static = tuple(c.detach().clone() for c in conditioning)
                with torch.no_grad():
                    fn = graphed_denoiser(make(*static), tuple(shape), device)
                entry = self._graphs[key] = (static, fn)
                self.captures += 1
                while len(self._graphs) > self.limit:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
                for buffer, value in zip(entry[0], conditioning):
                    buffer.copy_(value)
        return entry[1]

    def clear(self) -> None:
        """Drop every graph (and its memory pool, once nothing else holds it)."""
        self._graphs.clear()

    def __deepcopy__(self, memo) -> "DenoiserGraphs":
        # graphs replay on the original's memory: a copied model (an EMA copy) starts with none
        return DenoiserGraphs(None, self.limit)

    def __getstate__(self) -> dict:
        return {"_model": None, "limit": self.limit, "_graphs": collections.OrderedDict(), "captures": 0}


def denoiser_graphs(model) -> DenoiserGraphs:
    """The model's own :class:`DenoiserGraphs` (made on first use, kept with the model), which
    ``generation.generate`` replays with ``sampling.cuda_graph``."""
    graphs = model.__dict__.get("_denoiser_graphs")
    if graphs is None or graphs.model is not model:  # none yet, or one that came with a copy
        graphs = model.__dict__["_denoiser_graphs"] = DenoiserGraphs(model)
    return graphs


__all__ = ["graphed_denoiser", "DenoiserGraphs", "denoiser_graphs"]
