"""Training a network: the epoch loop, optimiser, checkpoints, data parallelism, the trainer."""
