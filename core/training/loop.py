"""The training loop: `Trainer` trains one run's model and reports everything through an event sink.

The whole split sits in memory as one uint8 tensor; each batch is an index slice of a seeded permutation,
augmented as a batch. Every epoch reports its metrics, `last.pt` and (when validation improves) `best.pt`;
the end evaluates the best weights on the official test set and stores every test probability.
Runs under torchrun as well: each rank takes its shard of every batch; rank 0's sink writes the run
(core.training.sink), the others' do nothing. The run's lifecycle (status, queue slot, stop, divergence,
failure) is core.training.session; the optimiser and schedule are core.training.optim.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.analysis import metrics
from core.data.augment import augment_batch
from core.data.datasets import (
    fold_indices,
    get_dataset,
    load_split,
    mean_std,
    normalise,
    shuffled_batches,
    to_unit_float,
    train_val_indices,
)
from core.inference.engine import autocast_context, predict_probs, resolve_device, uses_channels_last
from core.models.registry import count_parameters, create_model
from core.training.averaging import WeightAverage
from core.training.config import TrainConfig
from core.training.distributed import DistContext
from core.training.optim import build_optimizer, lr_at, set_lr
from core.training.sink import NullSink

STEP_EVENT_SECONDS = 0.25  # at most ~4 step events per second in metrics.jsonl
DATA_INIT_IMAGES = 5000  # images a data-initialised layer (patch whitening) is fitted on
STOP_CHECK_SECONDS = 0.2


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


class StopRequested(RuntimeError):
    """The user asked the run to stop."""


@dataclass
class Split:
    """The data one run trains and validates on, already on the training device."""

    images: torch.Tensor
    labels: torch.Tensor
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    mean: float
    std: float


def prepare_split(config: TrainConfig, device: torch.device) -> Split:
    """Load the training split, cut train/validation by seed (or fold), and compute normalisation."""
    images, labels = load_split(config.dataset, train=True)
    if config.folds > 1:
        train_idx, val_idx = fold_indices(len(images), config.folds, config.fold, config.seed)
    else:
        train_idx, val_idx = train_val_indices(len(images), config.val_fraction, config.seed)
    if config.subset:
        train_idx = train_idx[:config.subset]
    mean, std = mean_std(images[train_idx])
    return Split(images.to(device), labels.to(device), train_idx.to(device), val_idx.to(device), mean, std)


@dataclass
class Progress:
    """Training state that survives a stop: saved in last.pt, restored on resume."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimiser steps taken in total
    best_val_acc: float = -1.0
    best_epoch: int = 0
    epochs_since_best: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Trainer:
    """One run's training: model, optimiser, data, and the sink it reports to (core.training.sink)."""

    def __init__(self, config: TrainConfig, sink: NullSink | None, dist: DistContext):
        self.config, self.sink, self.dist = config, sink or NullSink(), dist
        self.device = dist.device or resolve_device(config.device)
        self.spec = get_dataset(config.dataset)
        self.split = prepare_split(config, self.device)
        self.global_batch = min(config.batch_size, len(self.split.train_idx))  # all ranks' shards together
        if dist.world_size > self.global_batch:
            raise ValueError(f"a batch of {self.global_batch} images cannot be shared by {dist.world_size} "
                             "processes: raise batch_size or start fewer processes")
        torch.manual_seed(config.seed)  # the same initial weights for the same seed
        self.model = create_model(config.model, **config.model_kwargs).to(self.device)
        self._init_from_data()
        self.channels_last = config.channels_last and uses_channels_last(self.model, self.device, config.precision)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = dist.wrap(self.model)
        self.optimizer = build_optimizer(self.model, config)
        self.average = WeightAverage(self.model, config.ema) if config.ema else None
        self.state = Progress()
        self.best_state: dict | None = None
        self.steps_per_epoch = self._count_steps()
        self.total_steps = self.steps_per_epoch * config.epochs
        self._last_event = self._last_stop_check = 0.0

    def _init_from_data(self) -> None:
        """Let a model that sets layers from the data (e.g. patch whitening) see a sample of the training split."""
        init = getattr(self.model, "init_from_data", None)
        if init is not None:
            sample = self.split.images[self.split.train_idx[:DATA_INIT_IMAGES]]
            init(normalise(to_unit_float(sample), self.split.mean, self.split.std))

    def _count_steps(self) -> int:
        n = len(self.split.train_idx)
        steps = max(1, n // self.config.batch_size)
        return min(steps, self.config.limit_batches) if self.config.limit_batches else steps

    @property
    def scored_model(self) -> torch.nn.Module:
        """The weights that are validated, kept as best and tested: the moving average when there is one."""
        return self.average.module if self.average else self.model

    # ---- checkpoints -------------------------------------------------------------------------
    def _checkpoint_meta(self) -> dict:
        return {"arch": self.config.model, "model_kwargs": self.config.model_kwargs,
                "dataset": self.config.dataset, "class_names": list(self.spec.classes),
                "mean": self.split.mean, "std": self.split.std, "config": self.config.to_dict()}

    def save_last(self) -> None:
        """Write last.pt: weights, optimiser and progress, enough to resume exactly."""
        self.sink.save_checkpoint("last.pt", self.model, lambda: {
            **self._checkpoint_meta(), "optimizer": self.optimizer.state_dict(), "progress": self.state.to_dict(),
            "best_state": self.best_state, "average": self.average.state_dict() if self.average else None})

    def save_best(self) -> None:
        self.sink.save_checkpoint("best.pt", self.scored_model, lambda: {
            **self._checkpoint_meta(), "epoch": self.state.epoch, "val_acc": self.state.best_val_acc})

    def restore(self, payload: dict) -> None:
        """Continue from a last.pt written by save_last (`payload` as load_checkpoint returns it)."""
        self.model.load_state_dict({k: v.to(self.device) for k, v in payload["state_dict"].items()})
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = Progress(**payload["progress"])
        self.best_state = payload.get("best_state")
        if self.average:
            self.average.load_state_dict(payload.get("average") or payload["state_dict"])
        # the split's normalisation is recomputed identically from the same seed; check it is unchanged
        if abs(payload["mean"] - self.split.mean) > 1e-6:
            raise RuntimeError("the data changed since this run started (normalisation differs)")

    # ---- one epoch ---------------------------------------------------------------------------
    def _log_step(self, epoch: int, loss: float, seen: int, epoch_start: float, session_start: float,
                  steps_done_here: int) -> None:
        now = time.time()
        if now - self._last_event < STEP_EVENT_SECONDS:
            return
        self._last_event = now
        images_per_sec = seen / max(1e-9, now - epoch_start)
        step_seconds = (now - session_start) / max(1, steps_done_here)
        eta = step_seconds * (self.total_steps - self.state.step)
        self.sink.emit("step", epoch=epoch, step=self.state.step, loss=loss, lr=self.optimizer.param_groups[0]["lr"],
                       images_per_sec=images_per_sec, elapsed=self.state.train_seconds + (now - epoch_start),
                       eta=eta, total_steps=self.total_steps)

    def _check_stop(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_stop_check < STOP_CHECK_SECONDS and not self.dist.active:
            return
        self._last_stop_check = now
        if self.dist.any_rank(self.sink.stop_requested()):
            raise StopRequested()

    def _backward(self, loss: torch.Tensor, n: int) -> float:
        """Backpropagate this rank's mean loss over its `n` images; returns the loss of the whole global batch.

        DDP averages gradients over ranks, so each shard is weighted by its share of the global batch: the step
        equals a single-process step on the whole batch even when the shards differ in size.
        """
        if not self.dist.active:
            loss.backward()
            return loss.item()
        (loss * (n * self.dist.world_size / self.global_batch)).backward()
        return float(self.dist.sum(loss.detach() * n)) / self.global_batch

    def train_epoch(self, epoch: int, session_start: float, steps_done_here: list) -> tuple[float, float]:
        """One pass over the shuffled training indices; returns (mean loss, accuracy) on the batches seen."""
        cfg, split = self.config, self.split
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)  # dropout: reproducible per epoch, also on resume
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        batches = shuffled_batches(split.train_idx.cpu(), cfg.batch_size, gen, self.dist.rank, self.dist.world_size)
        batches = batches[:self.steps_per_epoch]
        aug = cfg.augment(epoch)
        self.net.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        epoch_start = time.time()
        for idx in batches:
            idx = idx.to(self.device)
            x = to_unit_float(split.images[idx])
            y = split.labels[idx]
            if aug.active:
                x = augment_batch(x, aug, gen)
            x = normalise(x, split.mean, split.std)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            set_lr(self.optimizer, lr_at(self.state.step, self.total_steps, cfg))
            with autocast_context(self.device, cfg.precision):
                logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss_value = self._backward(loss, len(y))
            if not math.isfinite(loss_value):  # the same global value on every rank: all of them stop here
                raise Diverged(f"the training loss became {loss_value} at epoch {epoch}, step {self.state.step}")
            self.optimizer.step()
            if self.average:
                self.average.update(self.model, self.state.step)
            self.state.step += 1
            steps_done_here[0] += 1
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            self._log_step(epoch, loss_value, seen * self.dist.world_size, epoch_start, session_start,
                           steps_done_here[0])
            self._check_stop()
        totals = self.dist.sum(torch.stack([loss_sum, correct.float(), torch.tensor(float(seen), device=self.device)]))
        return float(totals[0] / totals[2]), float(totals[1] / totals[2])

    def validate(self) -> tuple[float | None, float | None, list | None]:
        """(loss, accuracy, confusion matrix) on the validation indices; Nones without a validation split."""
        if len(self.split.val_idx) == 0:
            return None, None, None
        probs = predict_probs(self.scored_model, self.split.images[self.split.val_idx], self.split.mean, self.split.std,
                              precision=self.config.precision, channels_last=self.channels_last)
        labels = self.split.labels[self.split.val_idx].cpu()
        loss = float(F.nll_loss(probs.clamp_min(1e-12).log(), labels))
        preds = probs.argmax(1).numpy()
        confusion = metrics.confusion_matrix(labels.numpy(), preds, len(self.spec.classes))
        return loss, float((preds == labels.numpy()).mean()), confusion.tolist()

    # ---- the whole run -----------------------------------------------------------------------
    def fit(self) -> str:
        """Train the remaining epochs; returns the final state ('completed' or raises Stop/Diverged)."""
        cfg = self.config
        session_start = time.time()
        steps_done_here = [0]
        self.sink.emit("start", epoch=self.state.epoch, total_epochs=cfg.epochs, steps_per_epoch=self.steps_per_epoch,
                       total_steps=self.total_steps, train_size=len(self.split.train_idx),
                       val_size=len(self.split.val_idx), device=str(self.device), world_size=self.dist.world_size,
                       params=count_parameters(self.model))
        self._check_stop(force=True)
        while self.state.epoch < cfg.epochs:
            epoch = self.state.epoch + 1
            started = time.time()
            train_loss, train_acc = self.train_epoch(epoch, session_start, steps_done_here)
            epoch_seconds = time.time() - started
            val_loss, val_acc, confusion = self.validate()
            monitored = self.monitor_test() if cfg.monitor_test else None
            self.state.epoch = epoch
            self.state.train_seconds += epoch_seconds
            score = val_acc if val_acc is not None else float(epoch)  # no validation: the latest is best
            improved = score > self.state.best_val_acc
            new_best = improved or score == self.state.best_val_acc  # a tie keeps the later, lower-lr weights
            if new_best:
                self.state.best_val_acc, self.state.best_epoch = score, epoch
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.scored_model.state_dict().items()}
            self.state.epochs_since_best = 0 if improved else self.state.epochs_since_best + 1
            # logged before the checkpoints (a kill in between redoes this epoch on resume), told to listeners
            # after them, so a listener that sees epoch N can count on last.pt holding it
            event = self.sink.emit(
                "epoch", notify=False, epoch=epoch, step=self.state.step, train_loss=train_loss, train_acc=train_acc,
                val_loss=val_loss, val_acc=val_acc, val_confusion=confusion, lr=self.optimizer.param_groups[0]["lr"],
                epoch_seconds=epoch_seconds, elapsed=self.state.train_seconds,
                images_per_sec=self.steps_per_epoch * cfg.batch_size / max(1e-9, epoch_seconds),
                **({} if monitored is None else {"test_acc": monitored}))
            self.state.history.append({k: v for k, v in event.items() if k != "val_confusion"})
            if new_best:
                self.save_best()
            self.save_last()
            self.sink.set_status("running", epoch=epoch)
            self.sink.notify(event)
            if cfg.patience and self.dist.any_rank(self.state.epochs_since_best >= cfg.patience):
                self.sink.emit("early_stop", epoch=epoch, best_epoch=self.state.best_epoch)
                break
        return "completed"

    def monitor_test(self) -> float:
        """Test accuracy of the current weights, for benchmarks' time-to-accuracy curves only."""
        images, labels = load_split(self.config.dataset, train=False)
        probs = predict_probs(self.scored_model, images, self.split.mean, self.split.std, tta_flip=self.config.tta_flip,
                              precision=self.config.precision, channels_last=self.channels_last)
        return float((probs.argmax(1) == labels).float().mean())

    def evaluate_test(self) -> dict:
        """Score the best weights on the official test set; store probabilities and the summary."""
        if self.best_state is not None:
            self.scored_model.load_state_dict(self.best_state)
        images, labels = load_split(self.config.dataset, train=False)
        started = time.time()
        probs = predict_probs(self.scored_model, images, self.split.mean, self.split.std, tta_flip=self.config.tta_flip,
                              precision=self.config.precision, channels_last=self.channels_last)
        preds = probs.argmax(1).numpy()
        report = metrics.classification_report(labels.numpy(), preds, len(self.spec.classes),
                                               list(self.spec.classes))
        summary = {
            "dataset": self.config.dataset, "model": self.config.model, "test_acc": report["accuracy"],
            "macro_f1": report["macro"]["f1"], "params": count_parameters(self.model),
            "train_seconds": round(self.state.train_seconds, 2), "epochs": self.state.epoch,
            "best_epoch": self.state.best_epoch, "best_val_acc": self.state.best_val_acc
            if len(self.split.val_idx) else None, "test_seconds": round(time.time() - started, 3),
            "device": str(self.device), "world_size": self.dist.world_size,
        }
        self.sink.write_test_outputs(probs.numpy(), labels.numpy(), summary)
        self.sink.emit("test", epoch=self.state.epoch, test_acc=summary["test_acc"], macro_f1=summary["macro_f1"])
        return summary

