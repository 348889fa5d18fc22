"""RSPS: Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019.

Random search with weight sharing: every weight step trains one path of the supernet drawn uniformly from the
space (only its ops run), and after each epoch ``candidates`` uniformly drawn architectures are scored on val
batches with the shared weights; the best is the genotype. Nothing architectural is learned, so there is no alpha
step and no alpha optimizer.
"""
from __future__ import annotations

from cdarts.config import Component, PositiveInt
from cdarts.registry import strategies
from cdarts.strategies.gdas import NB201_SGD
from cdarts.strategies.loop import Meter
from cdarts.strategies.sampling import CandidateSearch, sample_path


class RandomSearchWS(CandidateSearch):
    """RSPS (see the module docstring)."""

    def search_epoch(self, epoch: int, search_epoch: int) -> dict[str, float]:
        meter, generator = Meter(), self.generator(epoch)
        bar = self.ctx.progress(self.batches("train", epoch), desc=self.epoch_label(epoch), total=self.steps("train"))
        for x, y in bar:
            with self.search_net.one_path(sample_path(self.choices, generator)):
                self.weight_step(x, y, meter)
            bar.set_postfix(loss=f"{meter.mean('train_loss'):.3f}", acc=f"{meter.mean('train_acc'):.1f}")
        picks = self.generator(epoch, stream=1)
        candidates = [sample_path(self.choices, picks) for _ in range(self.candidates)]
        return {**meter.means(), **self.select(candidates, epoch)}


@strategies.register("rsps")
def rsps(
    *,
    epochs: PositiveInt = 250,
    candidates: PositiveInt = 100,
    score_batches: PositiveInt = 1,
    w_optimizer: Component("optimizers") = NB201_SGD,
    w_scheduler: Component("schedulers") = {"type": "cosine", "min_lr": 0.001},  # noqa: B006 - schema default
    loss: Component("losses") = {"type": "ce"},  # noqa: B006
) -> RandomSearchWS:
    """RSPS (Li & Talwalkar, UAI 2019) with the NAS-Bench-201 authors' settings: 250 epochs of uniformly sampled
    paths, SGD 0.025 (Nesterov, wd 5e-4) cosine to 0.001, 100 candidates scored each epoch on ``score_batches``
    un-augmented val batches (``eval_batch_size`` images each)."""
    return RandomSearchWS(
        epochs=epochs, pretrain_epochs=0, candidates=candidates, score_batches=score_batches, w_optimizer=w_optimizer,
        alpha_optimizer=None, w_scheduler=w_scheduler, loss=loss,
    )
