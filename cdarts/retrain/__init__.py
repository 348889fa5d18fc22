"""Retraining a discovered genotype from scratch: ``cdarts-train`` is a thin layer over :func:`train`.

``config`` holds the schema, ``data`` the splits and augmentation, ``loop`` one epoch of training and of
validation, ``run`` the run folder (resume, checkpoints, ``best/``) around them.
"""
from cdarts.retrain.config import load_retrain_config
from cdarts.retrain.data import build_data
from cdarts.retrain.run import TrainResult, train

__all__ = ["TrainResult", "build_data", "load_retrain_config", "train"]
