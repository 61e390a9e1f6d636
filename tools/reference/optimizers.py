#!/usr/bin/python3
"""Writes tests/Encore.Autograd.Tests/Fixtures/optimizers.json: parameter trajectories of
PyTorch's AdamW and SGD, and of Adafactor as Hugging Face transformers implements it (re-stated
below in torch ops, since torch 1.13 has no Adafactor), over fixed gradients.

Run with Debian's python3-torch: /usr/bin/python3 tools/reference/optimizers.py
"""
import json
import math
import os

import torch

torch.manual_seed(0)
STEPS = 5
SHAPES = {"w": (3, 4), "w3": (2, 3, 4), "b": (4,)}
DECAY = {"w": True, "w3": True, "b": False}  # rank >= 2 decays by default
init = {k: torch.randn(s) for k, s in SHAPES.items()}
grads = [{k: torch.randn(s) * (0.1 + i) for k, s in SHAPES.items()} for i in range(STEPS)]


def params():
    return {k: v.clone().requires_grad_(True) for k, v in init.items()}


def run(make_opt, lrs=None):
    ps = params()
    opt = make_opt(ps)
    out = []
    for i in range(STEPS):
        if lrs is not None:
            for g in opt.param_groups:
                g["lr"] = lrs[i]
        for k, p in ps.items():
            p.grad = grads[i][k].clone()
        opt.step()
        out.append({k: p.detach().flatten().tolist() for k, p in ps.items()})
    return out


def groups(ps, wd):
    return [{"params": [p for k, p in ps.items() if DECAY[k]], "weight_decay": wd},
            {"params": [p for k, p in ps.items() if not DECAY[k]], "weight_decay": 0.0}]


class HfAdafactor(torch.optim.Optimizer):
    """transformers.optimization.Adafactor's step(), restated."""

    def __init__(self, params, lr=None, eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8,
                 beta1=None, weight_decay=0.0, scale_parameter=True, relative_step=True):
        super().__init__(params, dict(lr=lr, eps=eps, clip_threshold=clip_threshold, decay_rate=decay_rate,
                                      beta1=beta1, weight_decay=weight_decay, scale_parameter=scale_parameter,
                                      relative_step=relative_step))

    @staticmethod
    def _rms(t):
        return t.norm(2) / (t.numel() ** 0.5)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                state = self.state[p]
                shape = grad.shape
                factored = len(shape) >= 2
                if len(state) == 0:
                    state["step"] = 0
                    if group["beta1"] is not None:
                        state["exp_avg"] = torch.zeros_like(grad)
                    if factored:
                        state["row"] = torch.zeros(shape[:-1])
                        state["col"] = torch.zeros(shape[:-2] + shape[-1:])
                    else:
                        state["sq"] = torch.zeros_like(grad)
                state["step"] += 1
                rms_p = self._rms(p)
                rel = group["lr"]
                if group["relative_step"]:
                    rel = min(1e-2, 1.0 / math.sqrt(state["step"]))
                scale = max(group["eps"][1], rms_p.item()) if group["scale_parameter"] else 1.0
                lr = scale * rel
                beta2t = 1.0 - math.pow(state["step"], group["decay_rate"])
                update = grad ** 2 + group["eps"][0]
                if factored:
                    state["row"].mul_(beta2t).add_(update.mean(dim=-1), alpha=1.0 - beta2t)
                    state["col"].mul_(beta2t).add_(update.mean(dim=-2), alpha=1.0 - beta2t)
                    r = (state["row"] / state["row"].mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
                    c = state["col"].unsqueeze(-2).rsqrt()
                    update = torch.mul(r, c).mul_(grad)
                else:
                    state["sq"].mul_(beta2t).add_(update, alpha=1.0 - beta2t)
                    update = state["sq"].rsqrt().mul_(grad)
                update.div_((self._rms(update) / group["clip_threshold"]).clamp_(min=1.0))
                update.mul_(lr)
                if group["beta1"] is not None:
                    state["exp_avg"].mul_(group["beta1"]).add_(update, alpha=1 - group["beta1"])
                    update = state["exp_avg"]
                if group["weight_decay"] != 0:
                    p.add_(p, alpha=-group["weight_decay"] * lr)
                p.add_(-update)


lrs = [0.01, 0.02, 0.015, 0.01, 0.005]
fixture = {
    "shapes": {k: list(s) for k, s in SHAPES.items()},
    "init": {k: v.flatten().tolist() for k, v in init.items()},
    "grads": [{k: g.flatten().tolist() for k, g in step.items()} for step in grads],
    "lrs": lrs,
    "cases": {
        "adamw": run(lambda ps: torch.optim.AdamW(groups(ps, 0.1), lr=0.01), lrs),
        "sgd_momentum": run(lambda ps: torch.optim.SGD(groups(ps, 0.01), lr=0.01, momentum=0.9), lrs),
        "sgd_nesterov": run(lambda ps: torch.optim.SGD(groups(ps, 0.01), lr=0.01, momentum=0.9, nesterov=True), lrs),
        "adafactor_external_lr": run(lambda ps: HfAdafactor(groups(ps, 0.0), lr=0.01, scale_parameter=False, relative_step=False), lrs),
        "adafactor_relative": run(lambda ps: HfAdafactor(groups(ps, 0.01), lr=None, beta1=0.9, scale_parameter=True, relative_step=True)),
    },
}
out = os.path.join(os.path.dirname(__file__), "../../tests/Encore.Autograd.Tests/Fixtures/optimizers.json")
with open(out, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.normpath(out))
