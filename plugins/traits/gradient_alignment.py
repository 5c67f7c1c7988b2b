"""How alike the base model's learning signal is on a source and on a target (LESS-style, Xia et al. 2024).

A pair trait: the cosine between the mean LoRA gradient of a source's training examples and that of
a target's test examples, at the base model, before any fine-tuning.
"""

from __future__ import annotations

from harness.api import PairTrait, SourceData, TargetData, completion_nll, hookimpl, pad_batch, tokenize_pairs


class GradientAlignment(PairTrait):
    """Cosine between the LoRA gradients of a source's training batch and a target's held-out rows.

    At the base model with a fresh LoRA adapter of rank ``rank`` on ``target_modules``. With peft's
    default initialisation ``B = 0`` and ``A`` random, so ``dL/dA = 0`` and the whole gradient is in
    ``B``: ``dL/dB = (dL/dW) Aᵀ`` (times alpha/r, which no cosine sees), a random projection of the
    full weight gradient to ``rank`` columns per module. That projected gradient is what LESS (Xia
    et al. 2024) compares. It is computed here without adding an adapter to the model: the base
    weights' gradient ``dL/dW`` (out, in) is taken for the batch and multiplied by a fixed ``A``
    (rank, in) per module, drawn as peft draws it (Kaiming-uniform, bound 1/sqrt(in)) from a
    generator seeded with ``seed``, module by module in name order.

    A side's gradient is that of the mean over its examples of each example's token-mean loss on
    its completion (the first ``n_source`` training examples of a source, the first ``n_target``
    test examples of a target), each encoded as training encodes it (``tokenize_pairs``: the
    sequence lm-eval scores, prompt cut from its start to fit ``max_length``). The gradients of all
    modules are concatenated; the value is the cosine of the two vectors. Each source's and each
    target's gradient is computed once (``sources + targets`` backward passes, not their product);
    the traits stage caches the whole table under the sources' and targets' data and the base model.

    Outputs
    -------
    gradient_cosine
        Per (source, target): the cosine, in ``[-1, 1]``; 1 for identical examples. ``None`` for a
        target without test examples (an lm-eval target that gives none), or a side whose every
        example is too long for ``max_length``, or a zero gradient.
    """

    name = "gradient_alignment"
    description = ("Cosine between the base model's LoRA-B gradient (a random projection of dL/dW, as in LESS) on a "
                   "source's training examples and on a target's test examples.")
    requires = frozenset({"source_data", "tokenizer", "base_model", "targets"})
    outputs = ("gradient_cosine",)

    def __init__(self, n_source: int = 16, n_target: int = 16, rank: int = 8,
                 target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj"),
                 max_length: int = 128, batch_size: int = 8, seed: int = 0):
        self.n_source = n_source
        self.n_target = n_target
        self.rank = rank
        self.target_modules = target_modules
        self.max_length = max_length
        self.batch_size = batch_size
        self.seed = seed

    def modules(self, model) -> list[tuple[str, object]]:
        """(name, nn.Linear) of the base weights a LoRA on ``target_modules`` would adapt, in name
        order; inside a peft model (its adapters switched off) the wrapped ``base_layer``."""
        import torch

        wanted = set(self.target_modules)
        found = []
        for name, module in model.named_modules():
            parts = name.split(".")
            owner = parts[-2] if parts[-1] == "base_layer" and len(parts) > 1 else parts[-1]
            if isinstance(module, torch.nn.Linear) and owner in wanted:
                found.append((name.removesuffix(".base_layer"), module))
        if not found:
            raise ValueError(f"no linear module named {sorted(wanted)} in the base model; set target_modules to "
                             "the LoRA target modules of the study (lora.target_modules)")
        return sorted(found, key=lambda item: item[0])

    def projections(self, modules) -> list:
        """The fixed LoRA ``A`` (rank, in) of each module, float32, seeded by ``seed``."""
        import torch

        generator = torch.Generator().manual_seed(self.seed)
        out = []
        for _, module in modules:
            bound = 1.0 / module.in_features ** 0.5  # kaiming_uniform_(a=sqrt(5)), peft's default for A
            out.append((torch.rand(self.rank, module.in_features, generator=generator) * 2 - 1) * bound)
        return out

    def gradient(self, model, tokenizer, examples, kind: str, modules, projections):
        """The concatenated projected gradient (float64, 1-D) of the mean example loss; None when no
        example fits."""
        import torch

        try:
            rows, _ = tokenize_pairs(tokenizer, [(ex.prompt, ex.completion) for ex in examples], self.max_length, kind)
        except ValueError:  # every completion longer than max_length
            return None
        if not rows:
            return None
        weights = [module.weight for _, module in modules]
        device = weights[0].device
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        total = [torch.zeros(w.shape[0], self.rank, dtype=torch.float64) for w in weights]
        rows = sorted(rows, key=lambda row: len(row[0]))  # batches of like lengths pad less; the sum is the same
        for start in range(0, len(rows), self.batch_size):
            batch = pad_batch(rows[start:start + self.batch_size], pad_id, device)
            tokens, example = completion_nll(model, batch)  # (tokens,): the head runs on these only
            counts = torch.bincount(example, minlength=len(batch["labels"])).clamp(min=1)
            per_example = torch.zeros(len(counts), device=tokens.device).index_add(0, example, tokens) / counts
            loss = per_example.sum() / len(rows)  # each example weighs the same
            grads = torch.autograd.grad(loss, weights)
            for acc, g, a in zip(total, grads, projections):
                acc += (g.float().cpu() @ a.T).double()  # dL/dB = dL/dW Aᵀ, (out, rank)
        return torch.cat([g.flatten() for g in total])

    def compute_pairs(self, sources: list[SourceData],
                      targets: list[TargetData]) -> dict[str, dict[str, dict[str, float | None]]]:
        import torch

        if not sources:
            return {"gradient_cosine": {}}
        model, tokenizer = sources[0].model, sources[0].tokenizer
        if model is None or tokenizer is None:
            raise ValueError("gradient_alignment needs the base model and its tokenizer (requires base_model)")
        modules = self.modules(model)
        projections = self.projections(modules)
        flags = {name: p.requires_grad for name, p in model.named_parameters()}
        training = model.training
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            for _, module in modules:
                module.weight.requires_grad_(True)
            model.eval()  # no dropout: the gradient of the model as it is
            with torch.enable_grad():
                src = {s.name: self.gradient(model, tokenizer, s.examples[:self.n_source], s.task.kind, modules,
                                             projections) for s in sources}
                tgt = {t.name: self.gradient(model, tokenizer, t.examples[:self.n_target], t.task.kind, modules,
                                             projections) if t.examples else None for t in targets}
        finally:
            for name, p in model.named_parameters():
                p.requires_grad_(flags[name])
            model.train(training)
        return {"gradient_cosine": {s: {t: _cosine(a, b) for t, b in tgt.items()} for s, a in src.items()}}


def _cosine(a, b) -> float | None:
    if a is None or b is None:
        return None
    norms = float(a.norm() * b.norm())
    return max(-1.0, min(1.0, float(a @ b) / norms)) if norms > 0 else None


@hookimpl
def register_traits(register):
    register(GradientAlignment)
