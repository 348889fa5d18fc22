"""ENAS: Pham et al., "Efficient Neural Architecture Search via Parameter Sharing", ICML 2018.

An LSTM controller samples architectures; the shared weights train on one sampled path per train batch (only its
ops run), then the controller trains by REINFORCE on val batches: reward = the path's val accuracy with the shared
weights plus ``entropy_weight`` times the sample's entropy, advantage = reward minus a moving-average baseline,
``aggregate`` samples per controller update. After each epoch ``candidates`` controller samples are scored on val
batches and the best is the genotype.

The controller follows the space's choices (``cdarts.spaces.paths``): per edge one op (NAS-Bench-201, the NAS-Bench-
201 authors' controller), or per node ``keep`` inputs chosen by attention over the earlier nodes' LSTM states, then
their ops (DARTS cells, Pham et al.'s micro controller; an input is not chosen twice, as the supernet has one edge
per input). Cell types follow one another in one LSTM sequence.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical
from torch.optim import Optimizer

from cdarts.config import Component, NonNegativeFloat, PositiveFloat, PositiveInt, build
from cdarts.optim import Beta
from cdarts.registry import strategies
from cdarts.runtime import zero_grad
from cdarts.spaces.paths import OFF, CellChoices, Path
from cdarts.strategies.base import SearchContext, guarded_step
from cdarts.strategies.loop import Meter, correct, recalibrated_bn
from cdarts.strategies.sampling import CandidateSearch


class Controller(nn.Module):
    """ENAS's LSTM policy over a space's choices; ``forward(generator)`` samples one path and returns it with its
    log-probability and entropy (sums over the decisions). Logits are ``tanh_constant * tanh(logits / temperature)``;
    every weight starts uniform in [-0.1, 0.1], as in ENAS."""

    def __init__(
        self, choices: Mapping[str, CellChoices], lstm_size: int = 32, lstm_layers: int = 2,
        tanh_constant: float = 2.5, temperature: float = 5.0,
    ) -> None:
        super().__init__()
        self.choices = dict(choices)
        num_ops = next(iter(self.choices.values())).num_ops
        self.tanh_constant, self.temperature = tanh_constant, temperature
        self.start = nn.Parameter(torch.empty(1, 1, lstm_size))
        self.lstm = nn.LSTM(lstm_size, lstm_size, num_layers=lstm_layers)
        self.op_embed = nn.Embedding(num_ops, lstm_size)
        self.op_head = nn.Linear(lstm_size, num_ops)
        self.attention = None
        if any(choice.keep is not None for choice in self.choices.values()):
            self.attention = nn.ModuleDict({"key": nn.Linear(lstm_size, lstm_size, bias=False),
                                            "query": nn.Linear(lstm_size, lstm_size, bias=False),
                                            "v": nn.Linear(lstm_size, 1, bias=False)})
        for param in self.parameters():
            nn.init.uniform_(param, -0.1, 0.1)

    def forward(self, generator: torch.Generator) -> tuple[Path, Tensor, Tensor]:
        rollout = Rollout(self, generator)
        path = {}
        for cell, choice in self.choices.items():
            index = [OFF] * len(choice.sources)
            if choice.keep is None:
                for row in itertools.chain.from_iterable(choice.nodes):
                    index[row] = rollout.choose_op(choice)
            else:
                rollout.choose_cell_inputs(choice, index)
            path[cell] = tuple(index)
        return path, torch.stack(rollout.log_probs).sum(), torch.stack(rollout.entropies).sum()


class Rollout:
    """One sampling pass of a ``Controller``: the LSTM state, the next input, the decisions' log-probabilities and
    entropies."""

    def __init__(self, controller: Controller, generator: torch.Generator) -> None:
        self.controller, self.generator = controller, generator
        self.inputs: Tensor = controller.start
        self.state: tuple[Tensor, Tensor] | None = None
        self.log_probs: list[Tensor] = []
        self.entropies: list[Tensor] = []

    def step(self, inputs: Tensor) -> Tensor:
        """One LSTM step; its top layer's output."""
        out, self.state = self.controller.lstm(inputs, self.state)
        return out.view(1, -1)

    def decide(self, logits: Tensor, allowed: Sequence[int]) -> int:
        """Draw one of ``allowed`` (positions in ``logits``) and record its log-probability and the entropy."""
        controller = self.controller
        logits = controller.tanh_constant * torch.tanh(logits.view(-1)[list(allowed)] / controller.temperature)
        dist = Categorical(logits=logits)
        pick = int(torch.multinomial(dist.probs.detach().double().cpu(), 1, generator=self.generator))
        self.log_probs.append(dist.log_prob(torch.tensor(pick, device=logits.device)))
        self.entropies.append(dist.entropy())
        return allowed[pick]

    def choose_op(self, choice: CellChoices) -> int:
        op = self.decide(self.controller.op_head(self.step(self.inputs)), choice.ops)
        self.inputs = self.controller.op_embed.weight[op].view(1, 1, -1)
        return op

    def choose_cell_inputs(self, choice: CellChoices, index: list[int]) -> None:
        """Pham et al.'s micro cell: anchors for the cell inputs, then per node its inputs by attention over the
        anchors of the states it may read (the chosen anchor is the next LSTM input), then their ops."""
        attention, start = self.controller.attention, self.controller.start
        anchors, keys = [], []
        for _ in choice.nodes[0]:  # the first node reads every cell input
            h = self.step(start)
            anchors.append(torch.zeros_like(h))
            keys.append(attention["key"](h))
        for node in choice.nodes:
            sources = [choice.sources[row] for row in node]
            picked: list[int] = []
            for _ in range(choice.keep):
                h = self.step(self.inputs)
                query = torch.tanh(torch.cat([keys[s] for s in sources]) + attention["query"](h))
                free = [k for k in range(len(node)) if k not in picked]
                picked.append(self.decide(attention["v"](query), free))
                self.inputs = anchors[sources[picked[-1]]].view(1, 1, -1)
            for k in picked:
                index[node[k]] = self.choose_op(choice)
            h = self.step(self.inputs)
            anchors.append(h)
            keys.append(attention["key"](h))
            self.inputs = start


class ReinforceSearch(CandidateSearch):
    """ENAS (see the module docstring). The baseline is checkpointed state; every process draws the same samples
    and averages the rewards over processes, so the controllers stay equal."""

    def __init__(
        self, *, controller: dict, controller_optimizer: dict, controller_steps: int, aggregate: int,
        entropy_weight: float, baseline_decay: float, **common: Any,
    ) -> None:
        super().__init__(**common)
        self.controller_spec, self.controller_opt_spec = controller, controller_optimizer
        self.controller_steps, self.aggregate = controller_steps, aggregate
        self.entropy_weight, self.baseline_decay = entropy_weight, baseline_decay
        self.baseline: float | None = None

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)
        self.controller = Controller(self.choices, **self.controller_spec).to(ctx.runtime.device)
        self.ctl_opt = build("optimizers", self.controller_opt_spec, self.controller.parameters())

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "controller": self.controller}

    def optimizers(self) -> dict[str, Optimizer]:
        return {**super().optimizers(), "controller": self.ctl_opt}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "baseline": self.baseline}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.baseline = state["baseline"]

    def sample(self, generator: torch.Generator) -> Path:
        with torch.no_grad():
            return self.controller(generator)[0]

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter, generator = Meter(), self.generator(epoch)
        bar = self.ctx.progress(self.batches("train", epoch), desc=self.epoch_label(epoch), total=self.steps("train"))
        for x, y in bar:
            with self.search_net.one_path(self.sample(generator)):
                self.weight_step(x, y, meter)
            bar.set_postfix(loss=f"{meter.mean('train_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        batches = self.endless("val", epoch)
        with recalibrated_bn(self.search_net, [], self.ctx.runtime):  # rewards on batch statistics, as `select`
            for _ in self.ctx.progress(range(self.controller_steps), desc=f"{self.epoch_label(epoch)}: controller"):
                self.controller_step([next(batches) for _ in range(self.aggregate)], generator, meter)
        picks = self.generator(epoch, stream=1)
        candidates = [self.sample(picks) for _ in range(self.candidates)]
        return {**meter.means(), "baseline": self.baseline, **self.select(candidates, epoch)}

    def endless(self, split: str, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The split's batches, pass after pass (each pass freshly shuffled)."""
        return itertools.chain.from_iterable(self.batches(split, epoch, repeat) for repeat in itertools.count(1))

    @guarded_step
    def controller_step(self, batches: list[tuple[Tensor, Tensor]], generator: torch.Generator,
                        meter: Meter) -> None:
        """One REINFORCE update of the controller over one sample per val batch (see ``reinforce``)."""
        zero_grad([self.ctl_opt])
        samples = [self.controller(generator) for _ in batches]
        accuracies = self.accuracies([path for path, _, _ in samples], batches)
        loss = self.reinforce(samples, accuracies, meter)
        self.ctx.runtime.step(loss, [self.ctl_opt], {"controller.reinforce": loss})

    def accuracies(self, paths: list[Path], batches: list[tuple[Tensor, Tensor]]) -> list[float]:
        """Each path's accuracy (a fraction) on its batch with the shared weights, over every process's batch."""
        runtime, net = self.ctx.runtime, self.search_net
        counts = torch.zeros(len(paths), 2, dtype=torch.float64, device=runtime.device)
        with torch.no_grad():
            for i, (path, (x, y)) in enumerate(zip(paths, batches, strict=True)):
                with net.one_path(path), runtime.autocast():
                    counts[i, 0], counts[i, 1] = correct(net(x), y), len(y)
        counts = runtime.reduce_sum(counts)
        return (counts[:, 0] / counts[:, 1]).tolist()

    def reinforce(self, samples: list[tuple[Path, Tensor, Tensor]], accuracies: list[float], meter: Meter) -> Tensor:
        """The mean of ``-log p(path) * (reward - baseline)``, reward = accuracy + ``entropy_weight`` * the sample's
        entropy; the baseline moves toward each reward first (``baseline_decay``; it starts at the first reward)."""
        terms = []
        for (_, log_prob, entropy), accuracy in zip(samples, accuracies, strict=True):
            reward = accuracy + self.entropy_weight * entropy.item()
            if self.baseline is None:
                self.baseline = reward
            self.baseline -= (1 - self.baseline_decay) * (self.baseline - reward)
            terms.append(-log_prob * (reward - self.baseline))
            meter.add("reward", reward)
            meter.add("controller_acc", 100.0 * accuracy)
            meter.add("controller_entropy", entropy.item())
        return torch.stack(terms).mean()


@strategies.register("enas")
def enas(
    *,
    epochs: PositiveInt = 310,
    candidates: PositiveInt = 100,
    score_batches: PositiveInt = 1,
    lstm_size: PositiveInt = 32,
    lstm_layers: PositiveInt = 2,
    tanh_constant: PositiveFloat = 2.5,
    temperature: PositiveFloat = 5.0,
    entropy_weight: NonNegativeFloat = 1e-4,
    baseline_decay: Beta = 0.99,
    controller_steps: PositiveInt = 50,
    aggregate: PositiveInt = 20,
    w_optimizer: Component("optimizers") = {  # noqa: B006 - schema default
        "type": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 2.5e-4, "nesterov": True},
    controller_optimizer: Component("optimizers") = {  # noqa: B006
        "type": "adam", "lr": 1e-3, "betas": [0.0, 0.999], "eps": 1e-3, "weight_decay": 0.0},
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 5e-4},  # noqa: B006
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
) -> ReinforceSearch:
    """ENAS (Pham et al., ICML 2018) with the NAS-Bench-201 authors' settings: 310 epochs, SGD 0.05 (Nesterov, wd
    2.5e-4) cosine to 5e-4 (they restart the cosine at 10, 30, 70, 150 epochs; ours decays once), controller LSTM
    32 x 2 layers, tanh constant 2.5, temperature 5, Adam 1e-3 (betas (0, 0.999), eps 1e-3), 50 updates of 20
    samples per epoch, entropy weight 1e-4, baseline decay 0.99; 100 controller samples scored each epoch on
    ``score_batches`` un-augmented val batches."""
    controller = {"lstm_size": lstm_size, "lstm_layers": lstm_layers, "tanh_constant": tanh_constant,
                  "temperature": temperature}
    return ReinforceSearch(
        epochs=epochs, pretrain_epochs=0, candidates=candidates, score_batches=score_batches, controller=controller,
        controller_optimizer=controller_optimizer, controller_steps=controller_steps, aggregate=aggregate,
        entropy_weight=entropy_weight, baseline_decay=baseline_decay, w_optimizer=w_optimizer, alpha_optimizer=None,
        w_scheduler=w_scheduler, loss=loss,
    )
