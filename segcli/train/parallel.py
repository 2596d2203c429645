"""A data-parallel worker's place in its run, over an initialised ``torch.distributed``.

Used by :func:`segcli.train.loop.run_train` when :mod:`segcli.train.distributed` (Ray Train)
runs it on several workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class Parallel:
    """This worker's place in a data-parallel run, over an initialised ``torch.distributed``."""

    rank: int
    world: int
    backend: str
    device: torch.device

    def _all_reduce(self, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        dist.all_reduce(tensor)
        return tensor

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Worker 0's parameters and buffers everywhere (the same start on every worker)."""
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor.data, 0)

    def any(self, flag: bool) -> bool:
        return bool(self._all_reduce(torch.tensor([float(flag)], device=self.device)).item() > 0)

    def broadcast_float(self, value: float) -> float:
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, 0)
        return float(t.item())

    def mean_losses(
        self, losses: dict[str, Tensor], loss: Tensor, images: int
    ) -> tuple[dict[str, Tensor], Tensor, int]:
        """The batch's losses over every worker (each weighted by its images), for the record
        and the finite check; ``loss`` keeps this worker's graph for its backward pass."""
        names = sorted(losses)
        values = torch.stack([losses[k].detach().float() for k in names] + [loss.detach().float()])
        packed = torch.cat([values * images, torch.tensor([float(images)], device=values.device)])
        packed = self._all_reduce(packed.to(self.device))
        total = max(float(packed[-1].item()), 1.0)
        mean = packed[:-1] / total
        out = {k: mean[i] for i, k in enumerate(names)}
        global_loss = mean[-1]
        # the global value decides finiteness; the local one carries the gradient
        carrier = loss + (global_loss - loss.detach())
        return out, carrier, int(packed[-1].item())

    def average_gradients(self, module: nn.Module, images: int, total: int) -> None:
        """Sum of every worker's gradients weighted by its share of the batch's images, in one
        all-reduce over a flat buffer (a worker without images contributes zeros)."""
        params = [p for p in module.parameters() if p.requires_grad]
        weight = images / max(total, 1)
        flat = torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * weight for p in params]
        )
        self._all_reduce(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n
