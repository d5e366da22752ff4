"""defectlib.engine: one training engine for every notebook of the course.

    from defectlib.engine import TrainConfig, detection_loss, fit
    cfg = TrainConfig(epochs=30, optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4,
                      schedule="multistep", milestones=(20, 28), warmup_iters=500)   # DANet
    history = fit(model, train_loader, cfg, loss_fn=detection_loss, evaluate=my_eval)
    history.plot()

Modules: ``config`` (TrainConfig), ``schedules`` (optimizers, warm-up + epoch schedules, early
stopping), ``loop`` (fit, Trainer), ``helpers`` (loss functions, predict, loss_evaluator),
``precision`` (bf16 / fp16 autocast, channels_last), ``checkpoint`` (exact resume), ``distributed`` (torchrun / DDP), ``history`` (History and its plot).
``python -m defectlib.engine --selftest`` trains a toy model (also under torchrun).
"""
from .checkpoint import load_checkpoint, load_weights, save_checkpoint
from .config import TrainConfig
from .distributed import DistInfo, init_from_env, is_main_process
from .history import History
from .helpers import detection_loss, loss_evaluator, predict, supervised_loss, to_device
from .loop import Trainer, fit
from .precision import PRECISIONS, Precision, cpu_has_native_bf16, resolve_precision
from .schedules import EarlyStopping, LRSchedule, build_optimizer, lr_curve

__all__ = ["TrainConfig", "fit", "Trainer", "History", "predict", "loss_evaluator", "supervised_loss", "detection_loss",
           "to_device", "EarlyStopping", "LRSchedule", "build_optimizer", "lr_curve", "save_checkpoint",
           "load_checkpoint", "load_weights", "DistInfo", "init_from_env", "is_main_process",
           "PRECISIONS", "Precision", "resolve_precision", "cpu_has_native_bf16"]
