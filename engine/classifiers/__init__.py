"""Downstream classifiers: timm models by name (`registry`), their inputs (`inputs`), the images of a job's arm
(`datasets`), torch-free-of-pickle checkpoints (`checkpoint`) and the resumable training loop (`train`)."""
