"""Config overrides of the seconds-long runs several test modules share."""

#: A whole ``quantnas run`` (search, then training) in seconds.
RUN = [
    "arch.c_fixed=12",
    "data.lr_crop=12",
    "data.repeat=1",
    "data.val_crop=64",
    "search.batch_size=4",
    "search.epochs=3",
    "search.warm_up=1",
    "search.steps_per_epoch=2",
    "search.c_fixed=0",
    "search.lr_crop=0",
    "search.alpha_lr=0.05",
    "search.target_bitops=0",
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    "tensorboard=false",
    "progress=false",
    "threads=1",
]

#: Training only, a few steps more, so the trained residual is not zero (export, upscale).
TRAIN = [
    "arch.c_fixed=12",
    "arch.output_scale=false",
    "data.lr_crop=12",
    "data.repeat=2",
    "data.val_crop=64",
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=6",
    "tensorboard=false",
    "progress=false",
    "threads=1",
]
